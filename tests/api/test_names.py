import re

from sampan.api.names import (
    generate_name,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    name_rule_for,
    validate_object_name,
)

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def test_subdomain():
    assert is_dns1123_subdomain("my-app.example.com") == []
    assert is_dns1123_subdomain("a") == []
    assert is_dns1123_subdomain("Foo") == [SUBDOMAIN_MSG]
    assert is_dns1123_subdomain("-a") == [SUBDOMAIN_MSG]
    assert is_dns1123_subdomain("a..b") == [SUBDOMAIN_MSG]
    assert is_dns1123_subdomain("") == [SUBDOMAIN_MSG]
    assert is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]


def test_label():
    assert is_dns1123_label("default") == []
    assert is_dns1123_label("a.b") == ["must not contain dots"]
    assert is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    errs = is_dns1123_label("A_b")
    assert errs and errs[0].startswith("a lowercase RFC 1123 label must consist of")
    assert "(e.g. 'my-name',  or '123-abc', regex used" in errs[0]


def test_dns1035():
    assert is_dns1035_label("web") == []
    errs = is_dns1035_label("1web")
    assert errs[0].startswith("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with")


def test_qualified_name():
    assert is_qualified_name("app") == []
    assert is_qualified_name("app.kubernetes.io/name") == []
    assert is_qualified_name("My_Key.1") == []
    assert is_qualified_name("/a") == ["prefix part must be non-empty"]
    assert is_qualified_name("a/") == ["name part must be non-empty", is_qualified_name("-")[0]]
    assert is_qualified_name("Bad_Prefix/a")[0].startswith("prefix part a lowercase RFC 1123 subdomain")
    assert is_qualified_name("a" * 64)[0] == "name part must be no more than 63 characters"
    assert is_qualified_name("a/b/c")[0].startswith("a qualified name must consist of")


def test_label_value():
    assert is_valid_label_value("") == []
    assert is_valid_label_value("v1.2_x-y") == []
    assert is_valid_label_value("-x")[0].startswith("a valid label must be an empty string or consist of")
    assert is_valid_label_value("a" * 64) == ["must be no more than 63 characters"]


def test_object_names():
    assert name_rule_for("", "configmaps") == "subdomain"
    assert name_rule_for("", "namespaces") == "label"
    assert name_rule_for("", "services") == "dns1035"
    assert name_rule_for("rbac.authorization.k8s.io", "clusterroles") == "path-segment"
    assert validate_object_name("subdomain", "web-") != []
    assert validate_object_name("subdomain", "web-", prefix=True) == []
    assert validate_object_name("path-segment", "system:controller:x") == []
    assert validate_object_name("path-segment", "a/b") == ["may not contain '/'"]
    assert validate_object_name("path-segment", "..") == ["may not be '..'"]


def test_generate_name():
    name = generate_name("web-")
    assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    long = generate_name("x" * 100)
    assert len(long) == 63 and long.startswith("x" * 58)
    assert len({generate_name("a-") for _ in range(50)}) > 40

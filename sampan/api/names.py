"""Name and label validation with Kubernetes' wording, and generateName.

Each ``is_*`` check returns a list of error strings; an empty list means valid.
The strings match apimachinery's ``util/validation`` so that clients see the
same messages a real API server would send.
"""

from __future__ import annotations

import re
import secrets

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + "(\\." + _LABEL_FMT + ")*"
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_FMT + ")?"

_LABEL_RE = re.compile(_LABEL_FMT)
_SUBDOMAIN_RE = re.compile(_SUBDOMAIN_FMT)
_DNS1035_RE = re.compile(_DNS1035_FMT)
_QUALIFIED_RE = re.compile(_QUALIFIED_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)

# generateName suffix alphabet: no vowels (no accidental words), no 0/1/3 lookalikes.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_RANDOM_LEN = 5
_MAX_GENERATED_PREFIX = DNS1123_LABEL_MAX - _RANDOM_LEN


def _full(regex: re.Pattern[str], value: str) -> bool:
    return regex.fullmatch(value) is not None


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Upstream's RegexError text (its odd double spaces included)."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    parts = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {parts}regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


EMPTY_ERROR = "must be non-empty"


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _full(_LABEL_RE, value):
        if _full(_SUBDOMAIN_RE, value):
            # A valid subdomain that fails as a label can only be failing on dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_LABEL_MSG, _LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_SUBDOMAIN_RE, value):
        errs.append(regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_error(DNS1035_LABEL_MAX))
    if not _full(_DNS1035_RE, value):
        errs.append(regex_error(_DNS1035_MSG, _DNS1035_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label/annotation keys: ``[prefix/]name`` with a DNS subdomain prefix."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_MSG, _QUALIFIED_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _full(_QUALIFIED_RE, name):
        errs.append(
            "name part " + regex_error(_QUALIFIED_MSG, _QUALIFIED_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_path_segment_name(value: str) -> list[str]:
    """Names that only need to be usable as one URL path segment (e.g. RBAC roles)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]


# How a resource's metadata.name is checked. Upstream picks one of these per kind.
NAME_RULES = {
    "subdomain": is_dns1123_subdomain,
    "label": is_dns1123_label,
    "dns1035": is_dns1035_label,
    "path-segment": is_path_segment_name,
}

# Resources whose names are not DNS subdomains (the default).
_RESOURCE_NAME_RULE: dict[tuple[str, str], str] = {
    ("", "namespaces"): "label",
    ("", "services"): "dns1035",
    ("rbac.authorization.k8s.io", "roles"): "path-segment",
    ("rbac.authorization.k8s.io", "clusterroles"): "path-segment",
    ("rbac.authorization.k8s.io", "rolebindings"): "path-segment",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "path-segment",
}


def name_rule_for(group: str, resource: str) -> str:
    return _RESOURCE_NAME_RULE.get((group, resource), "subdomain")


def validate_object_name(rule: str, name: str, prefix: bool = False) -> list[str]:
    """Check a metadata.name (or generateName when ``prefix``) against a rule.

    For a generateName prefix a trailing '-' is tolerated, since random
    characters will follow it.
    """
    check = NAME_RULES[rule]
    if prefix and rule != "path-segment" and name.endswith("-"):
        name = name[:-1] + "a"
    return check(name)


def generate_name(prefix: str) -> str:
    """``prefix`` + 5 random characters, keeping the result within 63 characters."""
    if len(prefix) > _MAX_GENERATED_PREFIX:
        prefix = prefix[:_MAX_GENERATED_PREFIX]
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_RANDOM_LEN))

import pytest

from sampan.api.selectors import (
    FieldSelector,
    SelectorError,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    selector_from_set,
)

LABELS = {"app": "web", "tier": "front", "env": "prod", "n": "5"}


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("", ""),
        ("app=web", "app=web"),
        ("app==web", "app==web"),
        ("app!=web", "app!=web"),
        ("  app = web ", "app=web"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("app in (web, api)", "app in (api,web)"),
        ("app notin (a)", "app notin (a)"),
        ("!app", "!app"),
        ("tier,!env", "!env,tier"),
        ("n>3", "n>3"),
        ("n<3", "n<3"),
        ("a=", "a="),
        ("a=,b=c", "a=,b=c"),
        ("example.com/key=v", "example.com/key=v"),
        ("x in (in)", "x in (in)"),
        ("in=notin", "in=notin"),
        ("x=a,x=a", "x=a,x=a"),
        ("app in (b,a,b)", "app in (a,b)"),
    ],
)
def test_parse_canonical(text, canonical):
    assert str(parse_label_selector(text)) == canonical


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app!=api", True),
        ("missing!=x", True),
        ("app in (api,web)", True),
        ("app in (api)", False),
        ("missing in (x)", False),
        ("app notin (api)", True),
        ("missing notin (x)", True),
        ("app notin (web)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("n>4", True),
        ("n>5", False),
        ("n<6", True),
        ("app>1", False),  # not an integer label: no match
        ("missing<10", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("missing=", False),
        ("missing notin ()", True),
    ],
)
def test_matches(text, expected):
    assert parse_label_selector(text).matches(LABELS) is expected


def test_matches_none_labels():
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize(
    "text, message",
    [
        ("x=a b", "found 'b', expected: ',' or 'end of string'"),
        ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt"),
        ("x=a,", "found '', expected: identifier after ','"),
        ("x=a,,y", "found ',', expected: identifier after ','"),
        (",x", "found ',', expected: !, identifier, or 'end of string'"),
        ("=x", "found '=', expected: !, identifier, or 'end of string'"),
        ("x in a", "unable to parse requirement: found 'a' expected: '('"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("x!y", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
        ("x=(a)", "unable to parse requirement: found '(', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!x=y", "found '=', expected: ',' or 'end of string'"),
        ("-x=y", f'unable to parse requirement: <nil>: Invalid value: "-x": {NAME_PART}'),
        ("a/b/c", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name "
         "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
         "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
         "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
         "prefix and '/' (e.g. 'example.com/MyName')"),
        ("x=-a", f'unable to parse requirement: values[0][x]: Invalid value: "-a": {LABEL_VALUE}'),
        ("x>a", 'unable to parse requirement: values[0]: Invalid value: "a": '
         "for 'Gt', 'Lt' operators, the value must be an integer"),
        ("x>-1", f'unable to parse requirement: values[0][x]: Invalid value: "-1": {LABEL_VALUE}'),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(SelectorError) as err:
        parse_label_selector(text)
    assert str(err.value) == message


def test_key_too_long():
    with pytest.raises(SelectorError, match="name part must be no more than 63 characters"):
        parse_label_selector("a" * 64)


def test_selector_error_is_value_error():
    assert issubclass(SelectorError, ValueError)


def test_empty_and_everything():
    assert parse_label_selector("").empty
    assert parse_label_selector("  ").empty
    assert not parse_label_selector("a").empty


def test_from_dict_none_matches_nothing():
    sel = label_selector_from_dict(None)
    assert not sel.matches({})
    assert not sel.matches(LABELS)
    assert not sel.empty
    assert str(sel) == ""


def test_from_dict_empty_matches_everything():
    sel = label_selector_from_dict({})
    assert sel.empty and sel.matches(LABELS) and sel.matches({})
    assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}).empty


def test_from_dict_full():
    sel = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "n", "operator": "Exists"},
                {"key": "gone", "operator": "DoesNotExist"},
            ],
        }
    )
    assert str(sel) == "app=web,env notin (dev),!gone,n,tier in (back,front)"
    assert sel.matches(LABELS)
    assert not sel.matches({**LABELS, "gone": "x"})
    assert not sel.matches({**LABELS, "env": "dev"})


def test_from_dict_errors():
    with pytest.raises(SelectorError) as err:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
    assert str(err.value) == '"Foo" is not a valid label selector operator'
    with pytest.raises(SelectorError) as err:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    assert str(err.value) == "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    with pytest.raises(SelectorError) as err:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert "values set must be empty for exists and does not exist" in str(err.value)
    with pytest.raises(SelectorError) as err:
        label_selector_from_dict({"matchLabels": {"a b": "c"}})
    assert str(err.value).startswith('key: Invalid value: "a b": name part must consist')


def test_requires_exact_match_and_from_set():
    sel = parse_label_selector("app=web,tier in (a,b)")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") is None
    assert str(selector_from_set({"b": "2", "a": "1"})) == "a=1,b=2"


# --- field selectors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, reqs, canonical",
    [
        ("", [], ""),
        ("metadata.name=a", [("metadata.name", "=", "a")], "metadata.name=a"),
        ("metadata.name==a", [("metadata.name", "=", "a")], "metadata.name=a"),
        ("status.phase!=Running", [("status.phase", "!=", "Running")], "status.phase!=Running"),
        (
            "status.phase!=Running,spec.nodeName=n1",
            [("spec.nodeName", "=", "n1"), ("status.phase", "!=", "Running")],
            "spec.nodeName=n1,status.phase!=Running",
        ),
        ("a=x\\,y", [("a", "=", "x,y")], "a=x\\,y"),
        ("a=x\\=y\\\\", [("a", "=", "x=y\\")], "a=x\\=y\\\\"),
        ("a=", [("a", "=", "")], "a="),
        ("a=b,", [("a", "=", "b")], "a=b"),
    ],
)
def test_field_parse(text, reqs, canonical):
    sel = parse_field_selector(text)
    assert sel.requirements == reqs
    assert str(sel) == canonical
    assert sel.empty is (not reqs)


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ("a=b\\x", "invalid field selector: invalid escape sequence: \\x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_field_errors(text, message):
    with pytest.raises(SelectorError) as err:
        parse_field_selector(text)
    assert str(err.value) == message


def test_field_matches():
    fields = {"metadata.name": "a", "status.phase": "Running"}
    assert parse_field_selector("metadata.name=a").matches(fields)
    assert not parse_field_selector("metadata.name=b").matches(fields)
    assert parse_field_selector("status.phase!=Pending").matches(fields)
    assert not parse_field_selector("status.phase!=Running,metadata.name=a").matches(fields)
    # A field the object lacks compares as the empty string.
    assert parse_field_selector("spec.nodeName=").matches(fields)
    assert parse_field_selector("spec.nodeName!=n1").matches(fields)
    assert FieldSelector().matches(fields)
    assert parse_field_selector("metadata.name=a").requires_exact_match("metadata.name") == "a"

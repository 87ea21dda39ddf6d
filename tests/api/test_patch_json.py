"""RFC 6902 JSON patch, including the upstream (evanphx/json-patch v4) quirks."""

from __future__ import annotations

import copy

import pytest

from sampan.api.patch import PatchError, PatchTestFailed, apply_json_patch

# (description, document, operations, expected) — RFC 6902 appendix A plus more.
CASES = [
    ("A.1 add object member", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2 add array element", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3 remove object member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4 remove array element", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5 replace value", {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6 move value",
     {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7 move array element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}], {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8 test success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10 add nested member", {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11 ignore unrecognized members", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A.14 ~0 and ~1 escapes", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
     {"/": 9, "~1": 10}),
    ("A.16 add array value", {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    ("escaped slash in key", {"metadata": {"labels": {}}},
     [{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"}],
     {"metadata": {"labels": {"app.kubernetes.io/name": "x"}}}),
    ("escaped tilde in key", {"a": {}}, [{"op": "add", "path": "/a/x~0y", "value": 1}], {"a": {"x~y": 1}}),
    ("append with -", {"f": ["a"]}, [{"op": "add", "path": "/metadata", "value": {}},
                                     {"op": "add", "path": "/f/-", "value": "b"}],
     {"f": ["a", "b"], "metadata": {}}),
    ("insert at end index", {"f": ["a"]}, [{"op": "add", "path": "/f/1", "value": "b"}], {"f": ["a", "b"]}),
    ("add replaces existing member", {"a": 1}, [{"op": "add", "path": "/a", "value": 2}], {"a": 2}),
    ("add null value", {}, [{"op": "add", "path": "/a", "value": None}], {"a": None}),
    ("copy deep value", {"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}],
     {"a": {"b": [1]}, "c": {"b": [1]}}),
    ("copy into array", {"a": [1, 2]}, [{"op": "copy", "from": "/a/0", "path": "/a/-"}], {"a": [1, 2, 1]}),
    ("move to same place", {"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
    ("test whole document", {"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}], {"a": 1}),
    ("test object ignores key order", {"a": {"x": 1, "y": [1, {"z": True}]}},
     [{"op": "test", "path": "/a", "value": {"y": [1, {"z": True}], "x": 1}}],
     {"a": {"x": 1, "y": [1, {"z": True}]}}),
    ("kopf finalizer patch", {"metadata": {"resourceVersion": "7", "finalizers": ["a"]}},
     [{"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
      {"op": "add", "path": "/metadata/finalizers/-", "value": "kopf.zalando.org/KopfFinalizerMarker"}],
     {"metadata": {"resourceVersion": "7", "finalizers": ["a", "kopf.zalando.org/KopfFinalizerMarker"]}}),
    ("csaupgrade managedFields replace", {"metadata": {"managedFields": [{"manager": "a"}], "resourceVersion": "3"}},
     [{"op": "replace", "path": "/metadata/managedFields", "value": []},
      {"op": "replace", "path": "/metadata/resourceVersion", "value": "3"}],
     {"metadata": {"managedFields": [], "resourceVersion": "3"}}),
    # Upstream quirks that clients can observe.
    ("replace of a missing member adds it", {"metadata": {}},
     [{"op": "replace", "path": "/metadata/labels", "value": {"a": "b"}}], {"metadata": {"labels": {"a": "b"}}}),
    ("negative index reads from the end", {"a": [1, 2, 3]}, [{"op": "remove", "path": "/a/-1"}], {"a": [1, 2]}),
    ("negative index on add", {"a": [1, 2]}, [{"op": "add", "path": "/a/-1", "value": 9}], {"a": [1, 2, 9]}),
    ("test null matches a missing member", {"a": {}}, [{"op": "test", "path": "/a/b", "value": None}], {"a": {}}),
    ("test null matches a null member", {"a": None}, [{"op": "test", "path": "/a", "value": None}], {"a": None}),
    ("copy from a missing member copies null", {"a": {}}, [{"op": "copy", "from": "/a/x", "path": "/b"}],
     {"a": {}, "b": None}),
]

# (description, document, operations, status code)
ERRORS = [
    ("A.9 test failure", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], 422),
    ("A.12 add to nonexistent target", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], 422),
    ("A.13 unknown op", {"foo": "bar"}, [{"op": "frobnicate", "path": "/foo"}], 422),
    ("A.15 comparing strings and numbers", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], 422),
    ("missing op", {}, [{"path": "/a", "value": 1}], 422),
    ("missing path", {}, [{"op": "add", "value": 1}], 422),
    ("missing from", {"a": 1}, [{"op": "move", "path": "/b"}], 422),
    ("remove missing member", {"a": 1}, [{"op": "remove", "path": "/b"}], 422),
    ("remove out of range", {"a": [1]}, [{"op": "remove", "path": "/a/1"}], 422),
    ("add past the end", {"a": [1]}, [{"op": "add", "path": "/a/2", "value": 3}], 422),
    ("replace out of range", {"a": [1]}, [{"op": "replace", "path": "/a/5", "value": 3}], 422),
    ("bad array index", {"a": [1]}, [{"op": "add", "path": "/a/x", "value": 3}], 422),
    ("path through a scalar", {"a": 1}, [{"op": "add", "path": "/a/b", "value": 3}], 422),
    ("replace whole document", {"a": 1}, [{"op": "replace", "path": "", "value": {}}], 422),
    ("move from missing member", {"a": {}}, [{"op": "move", "from": "/a/x", "path": "/b"}], 422),
    ("test a missing member with a value", {"a": {}}, [{"op": "test", "path": "/a/b", "value": 1}], 422),
    ("test true against 1", {"a": 1}, [{"op": "test", "path": "/a", "value": True}], 422),
    ("test without a value", {"a": 1}, [{"op": "test", "path": "/a"}], 422),
    ("body is not a list", {}, {"op": "add"}, 400),
    ("operation is not an object", {}, ["add"], 400),
    ("too many operations", {}, [{"op": "test", "path": "/a", "value": None}] * 10001, 413),
]


@pytest.mark.parametrize("desc,doc,ops,expected", CASES, ids=[c[0] for c in CASES])
def test_apply(desc: str, doc: dict, ops: list, expected: dict) -> None:
    before_doc, before_ops = copy.deepcopy(doc), copy.deepcopy(ops)
    assert apply_json_patch(doc, ops) == expected
    assert doc == before_doc and ops == before_ops


@pytest.mark.parametrize("desc,doc,ops,code", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(desc: str, doc: dict, ops: list, code: int) -> None:
    with pytest.raises(PatchError) as info:
        apply_json_patch(doc, ops)
    assert info.value.code == code
    assert info.value.message


def test_failed_test_op_is_its_own_error() -> None:
    with pytest.raises(PatchTestFailed) as info:
        apply_json_patch({"metadata": {"resourceVersion": "5"}},
                         [{"op": "test", "path": "/metadata/resourceVersion", "value": "4"}])
    assert info.value.code == 422
    assert "/metadata/resourceVersion" in info.value.message


def test_a_failing_op_leaves_the_input_alone() -> None:
    doc = {"a": [1, 2]}
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/zzz"}])
    assert doc == {"a": [1, 2]}


def test_added_values_are_copies() -> None:
    value = {"x": [1]}
    out = apply_json_patch({}, [{"op": "add", "path": "/a", "value": value}, {"op": "copy", "from": "/a", "path": "/b"}])
    out["a"]["x"].append(2)
    assert value == {"x": [1]} and out["b"] == {"x": [1]}

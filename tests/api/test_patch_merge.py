"""RFC 7386 JSON merge patch."""

from __future__ import annotations

import copy

import pytest

from sampan.api.patch import PatchError, apply_merge_patch, merge_patch_value

# RFC 7386 appendix A: (target, patch, result).
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("target,patch,result", RFC_EXAMPLES)
def test_rfc7386_examples(target: object, patch: object, result: object) -> None:
    assert merge_patch_value(target, patch) == result


# What kubectl and the Python clients send: (description, doc, patch, expected).
CASES = [
    ("kubectl label", {"metadata": {"name": "x", "labels": {"a": "1"}}},
     {"metadata": {"labels": {"b": "2"}}}, {"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}}),
    ("kubectl label remove", {"metadata": {"labels": {"a": "1", "b": "2"}}},
     {"metadata": {"labels": {"a": None}}}, {"metadata": {"labels": {"b": "2"}}}),
    ("kubectl scale", {"spec": {"replicas": 1}, "status": {"replicas": 1}},
     {"spec": {"replicas": 3}}, {"spec": {"replicas": 3}, "status": {"replicas": 1}}),
    ("configmap data", {"data": {"a": "1", "b": "1"}}, {"data": {"a": None, "b": "2"}}, {"data": {"b": "2"}}),
    ("lists are replaced", {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
     {"spec": {"containers": [{"name": "c"}]}}, {"spec": {"containers": [{"name": "c"}]}}),
    ("delete a missing key is a no-op", {"a": 1}, {"b": None}, {"a": 1}),
    ("new object loses nulls", {}, {"metadata": {"annotations": {"a": "1", "b": None}}},
     {"metadata": {"annotations": {"a": "1"}}}),
    ("object replaces scalar", {"a": 1}, {"a": {"b": 2, "c": None}}, {"a": {"b": 2}}),
    ("scalar replaces object", {"a": {"b": 1}}, {"a": 2}, {"a": 2}),
    ("empty patch", {"a": {"b": 1}}, {}, {"a": {"b": 1}}),
    ("empty object merges", {"a": {"b": 1}}, {"a": {}}, {"a": {"b": 1}}),
    ("null target member", {"a": None}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ("status patch", {"status": {"conditions": [{"type": "Ready"}], "phase": "Pending"}},
     {"status": {"phase": "Running"}}, {"status": {"conditions": [{"type": "Ready"}], "phase": "Running"}}),
]


@pytest.mark.parametrize("desc,doc,patch,expected", CASES, ids=[c[0] for c in CASES])
def test_apply(desc: str, doc: dict, patch: dict, expected: dict) -> None:
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    assert apply_merge_patch(doc, patch) == expected
    assert doc == before_doc and patch == before_patch


@pytest.mark.parametrize("patch", [None, "x", 3, ["a"]])
def test_non_object_patch_body_is_bad_request(patch: object) -> None:
    with pytest.raises(PatchError) as info:
        apply_merge_patch({"a": 1}, patch)  # type: ignore[arg-type]
    assert info.value.code == 400


def test_result_shares_nothing_with_inputs() -> None:
    doc = {"a": {"b": [1]}}
    patch = {"c": {"d": [2]}}
    out = apply_merge_patch(doc, patch)
    out["a"]["b"].append(9)
    out["c"]["d"].append(9)
    assert doc == {"a": {"b": [1]}} and patch == {"c": {"d": [2]}}

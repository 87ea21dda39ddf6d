"""The shortcuts of managedFields bookkeeping (equal subtrees skipped in comparisons,
cached FieldsV1 encodings and parses) give exactly what the full work gives."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from sampan.api import schemas
from sampan.api.apply import fieldpath as fp
from sampan.api.apply import merge as mg
from sampan.api.defaults import apply_defaults
from tests.harness import json_paths

POOL: list[Any] = [True, 1, 1.0, "x", None, {}, [], {"k": 1}, [{"name": "c"}], [{"name": "z", "image": "i"}]]


def pod() -> dict:
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
         "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0}]}}
    apply_defaults(p, "", "v1", "Pod")
    return p


def _full_compare(old: Any, new: Any, schema: Any, zero_structs: bool = False) -> tuple:
    mg.SHORTCUTS = False
    try:
        c = mg.compare(old, new, schema, zero_structs=zero_structs)
    finally:
        mg.SHORTCUTS = True
    return c.added, c.modified, c.removed


@pytest.mark.parametrize("seed", range(4))
def test_compare_skipping_equal_parts_matches_the_full_walk(seed):
    rnd = random.Random(seed)
    schema = mg.root_schema(schemas.schema_for("", "v1", "Pod"))
    base = pod()
    paths = [p for p in json_paths(base) if p]
    changed = 0
    for _ in range(200):
        new = copy.deepcopy(base)
        for path in rnd.sample(paths, rnd.randint(1, 3)):
            node = new
            try:
                for part in path[:-1]:
                    node = node[part]
                node[path[-1]] = copy.deepcopy(rnd.choice(POOL))
            except (KeyError, IndexError, TypeError):
                pass
        quick = mg.compare(base, new, schema)
        full = _full_compare(base, new, schema)
        assert (quick.added, quick.modified, quick.removed) == full
        # A create compares with the zero value; a status appearing is all new.
        created = mg.compare({}, new, schema, zero_structs=True)
        assert (created.added, created.modified, created.removed) == _full_compare({}, new, schema, True)
        no_status = {k: v for k, v in base.items() if k != "status"}
        quick = mg.compare(no_status, new, schema)
        assert (quick.added, quick.modified, quick.removed) == _full_compare(no_status, new, schema)
        changed += bool(quick.added or quick.modified or quick.removed)
    assert changed > 150  # the changes were seen at all


def test_identical_is_type_exact():
    assert mg._identical({"a": [1]}, {"a": [1]})
    assert not mg._identical({"a": True}, {"a": 1})
    assert not mg._identical(1.0, 1)
    assert not mg._identical(mg.MISSING, mg.MISSING)


def test_cached_fields_v1_are_fresh_and_equal():
    fields = fp.parse_fields_v1({"f:spec": {"f:renewTime": {}, "f:holderIdentity": {}}})
    first = fp.fields_v1(fields)
    first["f:spec"]["f:other"] = {}  # a caller changing its copy
    again = fp.fields_v1(fields)
    assert again == fp._fields_v1(fields) == {"f:spec": {"f:holderIdentity": {}, "f:renewTime": {}}}
    parsed = fp.parse_fields_v1(again)
    assert parsed == fields and fp.parse_fields_v1(again) is parsed  # cached (frozensets are immutable)
    with pytest.raises(ValueError):
        fp.parse_fields_v1({"f:spec": 5})

"""Compact informer copies: equal parts shared, managedFields left out, frozen in check mode."""

from __future__ import annotations

import copy
import gc
from typing import Any

import orjson
import pytest

from sampan.client.compact import CachedObjectMutated, Compactor, freeze, informer_transform
from sampan.client.informer import Informer
from sampan.client.interface import PODS
from tests.client.fake import FakeClient


def pod(name: str, node: str, rs_uid: str = "rs-1") -> dict[str, Any]:
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": rs_uid, "controller": True}],
                     "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                        "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "pause", "ports": [{"containerPort": 80}]}],
                 "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                  "tolerationSeconds": 300}],
                 "securityContext": {}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "hostIPs": []},
    }


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].pop("managedFields")
    return out


def test_equal_parts_are_one_object_and_values_are_kept() -> None:
    compact = Compactor()
    a, b = compact(pod("a", "n1")), compact(pod("b", "n2"))
    assert a == without_managed_fields(pod("a", "n1"))
    assert b == without_managed_fields(pod("b", "n2"))
    assert a["spec"]["containers"] is b["spec"]["containers"]
    assert a["spec"]["tolerations"] is b["spec"]["tolerations"]
    assert a["metadata"]["labels"] is b["metadata"]["labels"]
    assert a["metadata"]["ownerReferences"] is b["metadata"]["ownerReferences"]
    assert a["status"]["conditions"] is b["status"]["conditions"]
    # Unique parts stay apart, and the top levels are never shared.
    assert a["spec"] is not b["spec"] and a["metadata"] is not b["metadata"]


def test_json_types_are_not_conflated() -> None:
    compact = Compactor()
    objs = [compact({"metadata": {"name": str(i)}, "spec": {"x": {"v": v}}}) for i, v in
            enumerate([True, 1, 1.0, "1", None, False, 0])]
    values = [o["spec"]["x"]["v"] for o in objs]
    assert [type(v) for v in values] == [bool, int, float, str, type(None), bool, int]
    assert orjson.dumps(values) == b'[true,1,1.0,"1",null,false,0]'


def test_a_hash_collision_leaves_the_newcomer_unshared() -> None:
    compact = Compactor()
    first, equal, other = {"a": 1}, {"a": 1}, {"a": True}
    assert compact._share(42, first) is first
    assert compact._share(42, equal) is first
    assert compact._share(42, other) is other and other["a"] is True
    assert compact._share(42, [1]) == [1] and compact._share(43, ["1"]) == ["1"]


def test_an_object_nested_too_deep_to_walk_is_kept_as_it_is() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(5000):
        inner["x"] = {}
        inner = inner["x"]
    obj = {"metadata": {"name": "deep", "managedFields": [{}]}, "spec": deep}
    out = Compactor()(obj)
    assert out["spec"] is deep and "managedFields" not in out["metadata"]


def test_sweep_forgets_parts_no_object_uses() -> None:
    compact = Compactor()
    kept = compact(pod("a", "n1", rs_uid="keep"))
    for i in range(50):
        compact(pod(f"p{i}", "n1", rs_uid=f"gone-{i}"))
    gc.collect()
    grown = len(compact)
    compact.sweep()
    compact.sweep()  # parents first, then the children they held
    assert len(compact) < grown
    again = compact(pod("b", "n2", rs_uid="keep"))
    assert again["metadata"]["ownerReferences"] is kept["metadata"]["ownerReferences"]


def test_frozen_copies_refuse_changes_but_copy_to_plain_objects() -> None:
    obj = freeze(Compactor()(pod("a", "n1")))
    with pytest.raises(CachedObjectMutated):
        obj["spec"]["nodeName"] = "other"
    with pytest.raises(CachedObjectMutated):
        obj["status"]["conditions"].append({})
    with pytest.raises(CachedObjectMutated):
        obj["metadata"].setdefault("annotations", {})
    mutable = copy.deepcopy(obj)
    mutable["spec"]["containers"][0]["image"] = "nginx"
    assert type(mutable["spec"]["containers"]) is list
    assert orjson.loads(orjson.dumps(obj)) == without_managed_fields(pod("a", "n1"))


def test_check_mode_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPAN_CHECK_INFORMER_MUTATIONS", "1")
    with pytest.raises(CachedObjectMutated):
        informer_transform()(pod("a", "n1"))["metadata"]["name"] = "x"
    monkeypatch.delenv("SAMPAN_CHECK_INFORMER_MUTATIONS")
    plain = informer_transform()(pod("a", "n1"))
    assert type(plain) is dict and "managedFields" not in plain["metadata"]


async def test_informer_caches_and_hands_out_transformed_objects() -> None:
    client = FakeClient()
    client.put(pod("a", "n1"))
    client.put(pod("b", "n2"))
    informer = Informer(client, PODS, transform=Compactor())
    seen: list[dict[str, Any]] = []
    informer.add_handler(on_add=seen.append, on_update=lambda _o, n: seen.append(n))
    informer.start()
    try:
        assert await informer.wait_for_sync(2.0)
        a, b = informer.get("default/a"), informer.get("default/b")
        assert a is not None and b is not None
        assert "managedFields" not in a["metadata"]
        assert a["spec"]["containers"] is b["spec"]["containers"]
        client.put(pod("c", "n3"))
        for _ in range(200):
            if informer.get("default/c") is not None:
                break
            await asyncio_sleep()
        c = informer.get("default/c")
        assert c is not None and c["spec"]["containers"] is a["spec"]["containers"]
        assert all("managedFields" not in o["metadata"] for o in seen) and len(seen) == 3
    finally:
        await informer.stop()


async def asyncio_sleep() -> None:
    import asyncio

    await asyncio.sleep(0.01)

"""Pod garbage collection: terminated pods over the threshold and pods of vanished nodes."""

from __future__ import annotations

from sampan.api.errors import APIError
from sampan.client.interface import NODES, PODS
from sampan.controllers.base import ControllerOptions
from tests.controllers.conftest import eventually

SPEC = {"containers": [{"name": "c", "image": "busybox"}]}


async def names(client) -> list[str]:
    return sorted(p["metadata"]["name"] for p in (await client.list(PODS, "default"))["items"])


async def test_terminated_pods_over_threshold_oldest_first(client, start_controllers) -> None:
    for i in range(4):
        await client.create(PODS, {"metadata": {"name": f"done-{i}"}, "spec": SPEC}, "default")
        await client.patch(PODS, f"done-{i}", {"status": {"phase": "Succeeded"}}, "merge", "default", subresource="status")
    await client.create(PODS, {"metadata": {"name": "running"}, "spec": SPEC}, "default")
    options = ControllerOptions(extra={"terminated_pod_gc_threshold": 2, "podgc_period": 0.1})
    await start_controllers("podgc", options=options)

    async def trimmed() -> list[str] | None:
        found = await names(client)
        return found if len(found) == 3 else None

    found = await eventually(trimmed)
    assert "running" in found
    # creationTimestamps have second precision: any two finished pods may remain, never the running one.
    assert sum(1 for n in found if n.startswith("done-")) == 2


async def test_pods_of_deleted_node_are_failed_and_deleted(client, start_controllers) -> None:
    await client.create(NODES, {"metadata": {"name": "n1"}})
    spec = {**SPEC, "nodeName": "gone-node"}
    # The finalizer keeps the pod visible after its deletion so the test can look at it.
    meta = {"name": "orphan", "finalizers": ["example.com/keep"]}
    await client.create(PODS, {"metadata": meta, "spec": spec}, "default")
    await client.create(PODS, {"metadata": {"name": "fine"}, "spec": {**SPEC, "nodeName": "n1"}}, "default")
    options = ControllerOptions(extra={"podgc_period": 0.1, "podgc_quarantine": 0})
    await start_controllers("podgc", options=options)

    async def deleted() -> dict | None:
        pod = await client.get(PODS, "orphan", "default")
        return pod if pod["metadata"].get("deletionTimestamp") else None

    pod = await eventually(deleted)
    assert pod["status"]["phase"] == "Failed"
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert cond["reason"] == "DeletionByPodGC" and cond["message"] == "PodGC: node no longer exists"
    live = await client.get(PODS, "fine", "default")
    assert not live["metadata"].get("deletionTimestamp")


async def test_threshold_zero_disables(client, start_controllers) -> None:
    await client.create(PODS, {"metadata": {"name": "old"}, "spec": SPEC}, "default")
    await client.patch(PODS, "old", {"status": {"phase": "Failed"}}, "merge", "default", subresource="status")
    manager = await start_controllers("podgc", options=ControllerOptions(extra={"terminated_pod_gc_threshold": 0}))
    gc = manager.get("podgc")
    await gc.reconcile("podgc")
    try:
        await client.get(PODS, "old", "default")
    except APIError as exc:  # pragma: no cover - the assertion below explains
        raise AssertionError("pod was collected with the threshold off") from exc

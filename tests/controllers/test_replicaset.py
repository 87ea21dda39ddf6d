"""ReplicaSet controller: creates/deletes pods to match replicas, adopts and releases, reports status."""

from __future__ import annotations

import asyncio
import time

from sampan.client.interface import EVENTS, PODS, REPLICASETS
from sampan.controllers.util.ranking import pods_to_delete
from sampan.controllers.util.writes import slow_start_batch
from tests.controllers.conftest import eventually
from tests.controllers.kubelet import FakeKubelet, mark_running

NS = "default"


def replica_set(name: str = "web", replicas: int = 3, min_ready: int = 0) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "front"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }


async def owned_pods(client, name: str = "web") -> list[dict]:
    pods = (await client.list(PODS, NS))["items"]
    return [
        p for p in pods
        if any(r.get("name") == name and r.get("controller") for r in p["metadata"].get("ownerReferences") or [])
        and not p["metadata"].get("deletionTimestamp")
    ]


async def test_creates_pods_and_reports_status(client, start_controllers) -> None:
    await start_controllers("replicaset")
    await client.create(REPLICASETS, replica_set(replicas=3), NS)

    async def three() -> list[dict]:
        pods = await owned_pods(client)
        return pods if len(pods) == 3 else []

    pods = await eventually(three)
    for pod in pods:
        assert pod["metadata"]["name"].startswith("web-")
        assert pod["metadata"]["labels"] == {"app": "web", "tier": "front"}
        ref = pod["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "ReplicaSet" and ref["blockOwnerDeletion"] is True

    async def status_replicas() -> bool:
        st = (await client.get(REPLICASETS, "web", NS)).get("status", {})
        return st.get("replicas") == 3 and st.get("fullyLabeledReplicas") == 3 and st.get("observedGeneration") == 1

    await eventually(status_replicas)
    for pod in pods:
        await mark_running(client, pod)

    async def all_ready() -> bool:
        st = (await client.get(REPLICASETS, "web", NS))["status"]
        return st.get("readyReplicas") == 3 and st.get("availableReplicas") == 3

    await eventually(all_ready)

    async def created_events() -> list[dict]:
        events = (await client.list(EVENTS, NS))["items"]
        return [e for e in events if e["reason"] == "SuccessfulCreate" and e["involvedObject"]["name"] == "web"]

    events = await eventually(created_events)
    assert events[0]["message"].startswith("Created pod: web-")
    assert events[0]["source"]["component"] == "replicaset-controller"
    # Nothing is created twice: the count stays at three.
    assert len(await owned_pods(client)) == 3


async def test_scale_down_deletes_unready_first(client, start_controllers) -> None:
    await start_controllers("replicaset")
    await client.create(REPLICASETS, replica_set(replicas=3), NS)
    pods = await eventually(lambda: _count(client, 3))
    ready = sorted(p["metadata"]["name"] for p in pods)[:2]
    for pod in pods:
        if pod["metadata"]["name"] in ready:
            await mark_running(client, pod)
    await eventually(lambda: _ready(client, 2))
    await client.patch(REPLICASETS, "web", {"spec": {"replicas": 2}}, "merge", NS)
    left = await eventually(lambda: _count(client, 2))
    assert sorted(p["metadata"]["name"] for p in left) == ready

    async def deleted_event() -> list[dict]:
        events = (await client.list(EVENTS, NS))["items"]
        return [e for e in events if e["reason"] == "SuccessfulDelete"]

    assert (await eventually(deleted_event))[0]["message"].startswith("Deleted pod: web-")


async def test_replaces_deleted_pod_and_scales_up_in_batches(client, start_controllers) -> None:
    await start_controllers("replicaset")
    await client.create(REPLICASETS, replica_set(replicas=10), NS)
    pods = await eventually(lambda: _count(client, 10))
    await client.delete(PODS, pods[0]["metadata"]["name"], NS)
    after = await eventually(lambda: _count(client, 10))
    assert pods[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in after}


async def test_adopts_orphans_and_releases_mismatches(client, start_controllers) -> None:
    orphan = {"metadata": {"name": "stray", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    await client.create(PODS, orphan, NS)
    await start_controllers("replicaset")
    await client.create(REPLICASETS, replica_set(replicas=2), NS)
    pods = await eventually(lambda: _count(client, 2))
    assert "stray" in {p["metadata"]["name"] for p in pods}
    # Relabel the adopted pod: the set lets it go and makes a replacement.
    await client.patch(PODS, "stray", {"metadata": {"labels": {"app": "other"}}}, "merge", NS)

    async def released() -> bool:
        stray = await client.get(PODS, "stray", NS)
        return not stray["metadata"].get("ownerReferences") and len(await owned_pods(client)) == 2

    await eventually(released)


async def test_min_ready_seconds_delays_availability(client, start_controllers) -> None:
    manager = await start_controllers("replicaset")
    await client.create(REPLICASETS, replica_set(replicas=1, min_ready=3600), NS)
    kubelet = FakeKubelet(client).start()
    try:
        await eventually(lambda: _ready(client, 1))
        st = (await client.get(REPLICASETS, "web", NS))["status"]
        assert st.get("availableReplicas", 0) == 0
        # Two hours later (fake clock) the pod has been ready long enough.
        manager.context.clock = lambda: time.time() + 7200
        await client.patch(REPLICASETS, "web", {"metadata": {"labels": {"poke": "1"}}}, "merge", NS)

        async def available() -> bool:
            return (await client.get(REPLICASETS, "web", NS))["status"].get("availableReplicas") == 1

        await eventually(available)
    finally:
        await kubelet.stop()


def _pod(name: str, node: str = "", phase: str = "Pending", ready: bool = False, cost: int | None = None) -> dict:
    meta: dict = {"name": name, "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    conds = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    return {"metadata": meta, "spec": {"nodeName": node}, "status": {"phase": phase, "conditions": conds}}


def test_deletion_ranking_order() -> None:
    pods = [
        _pod("ready-cheap", "n1", "Running", True, cost=-5),
        _pod("ready", "n1", "Running", True),
        _pod("running-unready", "n1", "Running", False),
        _pod("pending", "n1", "Pending"),
        _pod("unscheduled"),
    ]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, pods, 5, 1.8e9)]
    assert order == ["unscheduled", "pending", "running-unready", "ready-cheap", "ready"]


def test_deletion_ranking_prefers_crowded_nodes() -> None:
    a, b = _pod("a", "crowded", "Running", True), _pod("b", "quiet", "Running", True)
    related = [a, b, _pod("x", "crowded", "Running", True)]
    assert [p["metadata"]["name"] for p in pods_to_delete([b, a], related, 1, 1.8e9)] == ["a"]


async def _count(client, n: int) -> list[dict]:
    pods = await owned_pods(client)
    return pods if len(pods) == n else []


async def _ready(client, n: int) -> bool:
    st = (await client.get(REPLICASETS, "web", NS)).get("status", {})
    return st.get("readyReplicas") == n


async def test_failed_creates_set_replica_failure(client, start_controllers) -> None:
    await start_controllers("replicaset")
    rs = replica_set(replicas=3)
    rs["spec"]["template"]["spec"]["priorityClassName"] = "missing-class"  # admission refuses the pods
    await client.create(REPLICASETS, rs, NS)

    async def failure() -> dict:
        st = (await client.get(REPLICASETS, "web", NS)).get("status", {})
        return next((c for c in st.get("conditions", []) if c["type"] == "ReplicaFailure"), {})

    cond = await eventually(failure)
    assert cond["status"] == "True" and cond["reason"] == "FailedCreate"
    assert "missing-class" in cond["message"]

    async def failed_event() -> list[dict]:
        return [e for e in (await client.list(EVENTS, NS))["items"] if e["reason"] == "FailedCreate"]

    event = (await eventually(failed_event))[0]
    assert event["type"] == "Warning" and event["message"].startswith("Error creating: ")
    # The fix clears the condition.
    await client.patch(REPLICASETS, "web", {"spec": {"template": {"spec": {"priorityClassName": None}}}}, "merge", NS)

    async def cleared() -> bool:
        st = (await client.get(REPLICASETS, "web", NS)).get("status", {})
        return st.get("replicas") == 3 and not any(c["type"] == "ReplicaFailure" for c in st.get("conditions", []))

    await eventually(cleared)


async def test_slow_start_batches_double_and_stop_on_error() -> None:
    calls = 0
    totals: list[int] = []

    async def run(count: int, fail_at: int = 0) -> tuple[int, int, BaseException | None]:
        nonlocal calls
        calls = 0
        totals.clear()

        async def fn() -> None:
            nonlocal calls
            calls += 1
            if calls == fail_at:
                raise RuntimeError("boom")
            await asyncio.sleep(0)
            totals.append(calls)  # every call of a batch starts before any finishes

        return await slow_start_batch(count, 1, fn)

    assert await run(10) == (10, 10, None)
    assert sorted(set(totals)) == [1, 3, 7, 10]  # batches of 1, 2, 4, 3
    successes, attempted, error = await run(10, fail_at=2)
    assert (successes, attempted, str(error)) == (2, 3, "boom")

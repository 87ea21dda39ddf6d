"""Node lifecycle and taint-based eviction over the in-process client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from sampan.client.interface import EVENTS, LEASES, NODES, PODS
from sampan.controllers.base import ControllerOptions
from sampan.controllers.nodelifecycle import desired_taints, unknown_conditions
from tests.controllers.conftest import eventually

GRACE = 0.6
OPTIONS = ControllerOptions(node_monitor_grace_period=GRACE)


def stamp(micro: bool = False) -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def node_status(ready: str = "True", **conditions: str) -> dict[str, Any]:
    now = stamp()
    conds = [{"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": now,
              "lastTransitionTime": now}]
    for kind, status in conditions.items():
        conds.append({"type": kind, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now})
    return {"conditions": conds}


async def make_node(client, name: str, ready: str = "True", **conditions: str) -> dict[str, Any]:
    node = await client.create(NODES, {"metadata": {"name": name}, "status": node_status(ready, **conditions)})
    lease = {"metadata": {"name": name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp(True)}}
    await client.create(LEASES, lease, "kube-node-lease")
    return node


async def renew(client, name: str) -> None:
    await client.patch(LEASES, name, {"spec": {"renewTime": stamp(True)}}, "merge", "kube-node-lease")


async def make_pod(client, name: str, node: str, tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    await client.create(PODS, {"metadata": {"name": name}, "spec": spec}, "default")
    now = stamp()
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}
    return await client.patch(PODS, name, {"status": status}, "merge", "default", subresource="status")


def ready_of(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def taint_keys(node: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node.get("spec", {}).get("taints") or []}


async def test_silent_node_goes_unknown_and_recovers(client, start_controllers) -> None:
    await make_node(client, "n1")
    await make_pod(client, "p1", "n1")
    await start_controllers("nodelifecycle", options=OPTIONS)

    async def unknown() -> dict[str, Any] | None:
        node = await client.get(NODES, "n1")
        return node if ready_of(node)["status"] == "Unknown" and node.get("spec", {}).get("taints") else None

    node = await eventually(unknown)
    ready = ready_of(node)
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    never = {c["type"]: c for c in node["status"]["conditions"]}
    assert never["MemoryPressure"]["status"] == "Unknown"
    assert never["MemoryPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert taint_keys(node) == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")
    }
    no_execute = next(t for t in node["spec"]["taints"] if t["effect"] == "NoExecute")
    assert no_execute["timeAdded"]

    async def pod_not_ready() -> bool:
        return ready_of(await client.get(PODS, "p1", "default"))["status"] == "False"

    await eventually(pod_not_ready)

    async def event_recorded() -> bool:
        events = (await client.list(EVENTS, "default"))["items"]
        return any(e["reason"] == "NodeNotReady" and e["involvedObject"]["name"] == "n1" for e in events)

    await eventually(event_recorded)

    # The kubelet is back: it renews its lease and posts Ready again.
    await renew(client, "n1")
    await client.patch(NODES, "n1", {"status": node_status("True")}, "merge", subresource="status")

    async def recovered() -> bool:
        node = await client.get(NODES, "n1")
        return ready_of(node)["status"] == "True" and not node.get("spec", {}).get("taints")

    await eventually(recovered)

    await client.delete(NODES, "n1")

    async def removal_recorded() -> bool:
        events = (await client.list(EVENTS, "default"))["items"]
        return any(e["reason"] == "RemovingNode" and e["involvedObject"]["name"] == "n1" for e in events)

    await eventually(removal_recorded)


async def test_lease_renewals_keep_a_node_ready(client, start_controllers) -> None:
    await make_node(client, "alive")
    await make_node(client, "dead")
    await start_controllers("nodelifecycle", options=OPTIONS)

    async def dead_unknown() -> bool:
        return ready_of(await client.get(NODES, "dead"))["status"] == "Unknown"

    # Renew one node's lease until the other, silent one has been given up on, and a bit more.
    for _ in range(int(GRACE / 0.1) * 4):
        await renew(client, "alive")
        await asyncio.sleep(0.1)
    await eventually(dead_unknown)
    node = await client.get(NODES, "alive")
    assert ready_of(node)["status"] == "True"
    assert not node.get("spec", {}).get("taints")


async def test_condition_and_cordon_taints(client, start_controllers) -> None:
    await make_node(client, "sick", ready="False", MemoryPressure="True")
    await make_node(client, "cordoned")
    await client.patch(NODES, "cordoned", {"spec": {"unschedulable": True}}, "merge")
    await start_controllers("nodelifecycle", options=ControllerOptions(node_monitor_grace_period=60))

    async def tainted(name: str, expected: set[tuple[str, str]]) -> bool:
        return taint_keys(await client.get(NODES, name)) == expected

    sick = {
        ("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    }
    await eventually(lambda: tainted("sick", sick))
    await eventually(lambda: tainted("cordoned", {("node.kubernetes.io/unschedulable", "NoSchedule")}))
    # A taint someone else put there stays; uncordoning removes only ours.
    await client.patch(NODES, "cordoned", {"spec": {"unschedulable": False, "taints": [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
        {"key": "example.com/gpu", "value": "yes", "effect": "NoSchedule"}]}}, "merge")
    await eventually(lambda: tainted("cordoned", {("example.com/gpu", "NoSchedule")}))


async def test_pods_get_default_tolerations(client) -> None:
    await client.create(PODS, {"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
                        "default")
    pod = await client.get(PODS, "plain", "default")
    assert {(t["key"], t["effect"], t["tolerationSeconds"]) for t in pod["spec"]["tolerations"]} == {
        ("node.kubernetes.io/not-ready", "NoExecute", 300), ("node.kubernetes.io/unreachable", "NoExecute", 300)
    }
    own = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 7}]
    spec = {"containers": [{"name": "c", "image": "x"}], "tolerations": own}
    await client.create(PODS, {"metadata": {"name": "own"}, "spec": spec}, "default")
    tolerations = (await client.get(PODS, "own", "default"))["spec"]["tolerations"]
    assert {t["key"]: t["tolerationSeconds"] for t in tolerations} == {
        "node.kubernetes.io/unreachable": 7, "node.kubernetes.io/not-ready": 300
    }


async def test_taint_eviction(client, start_controllers) -> None:
    await make_node(client, "n2")
    taint = {"key": "example.com/maintenance", "effect": "NoExecute"}
    await make_pod(client, "intolerant", "n2")
    await make_pod(client, "patient", "n2", [{"key": "example.com/maintenance", "operator": "Exists"}])
    await make_pod(client, "brief", "n2", [{"key": "example.com/maintenance", "operator": "Exists",
                                            "effect": "NoExecute", "tolerationSeconds": 1}])
    await start_controllers("taint-eviction-controller")
    await client.patch(NODES, "n2", {"spec": {"taints": [taint]}}, "merge")

    async def terminating(name: str) -> dict[str, Any] | None:
        pod = await client.get(PODS, name, "default")
        return pod if pod["metadata"].get("deletionTimestamp") else None

    first = await eventually(lambda: terminating("intolerant"))
    target = next(c for c in first["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert target["reason"] == "DeletionByTaintManager"
    await eventually(lambda: terminating("brief"))
    assert not (await client.get(PODS, "patient", "default"))["metadata"].get("deletionTimestamp")

    async def marked_event() -> bool:
        events = (await client.list(EVENTS, "default"))["items"]
        return any(e["reason"] == "TaintManagerEviction" and e["involvedObject"]["name"] == "brief" for e in events)

    await eventually(marked_event)


async def test_unreachable_node_evicts_after_toleration(client, start_controllers) -> None:
    await make_node(client, "gone")
    short = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
              "tolerationSeconds": 1}]
    await make_pod(client, "short", "gone", short)
    await make_pod(client, "default-wait", "gone")  # tolerates for the default 300 s
    await start_controllers("nodelifecycle", "taint-eviction-controller", options=OPTIONS)

    async def evicted() -> bool:
        return bool((await client.get(PODS, "short", "default"))["metadata"].get("deletionTimestamp"))

    await eventually(evicted)
    assert not (await client.get(PODS, "default-wait", "default"))["metadata"].get("deletionTimestamp")


def test_taint_and_condition_helpers() -> None:
    node = {"metadata": {"name": "x", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                                 "timeAdded": "2025-01-01T00:00:01Z"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    taints = desired_taints(node, 1.0e9)
    # An existing NoExecute taint keeps the time it was added.
    assert {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
            "timeAdded": "2025-01-01T00:00:01Z"} in taints
    assert {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"} in taints
    conditions = unknown_conditions(node, 1.0e9)
    assert conditions is not None and {c["type"] for c in conditions} == {
        "Ready", "MemoryPressure", "DiskPressure", "PIDPressure"
    }
    assert unknown_conditions({**node, "status": {"conditions": conditions}}, 1.0e9) is None


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"operator": "Exists"}, {"key": "a", "effect": "NoExecute"}, True),
        ({"key": "a", "value": "1"}, {"key": "a", "value": "1", "effect": "NoSchedule"}, True),
        ({"key": "a", "value": "1"}, {"key": "a", "value": "2", "effect": "NoSchedule"}, False),
        ({"key": "a", "operator": "Exists", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}, False),
    ],
)
def test_toleration_matching(toleration: dict[str, Any], taint: dict[str, Any], expected: bool) -> None:
    from sampan.controllers.util.taints import tolerates

    assert tolerates(toleration, taint) is expected

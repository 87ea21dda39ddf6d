"""DaemonSet controller: placement by selector/affinity/taints, rolling updates, OnDelete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sampan.client.interface import CONTROLLERREVISIONS, DAEMONSETS, EVENTS, NODES, PODS
from sampan.controllers.daemonset import should_run
from tests.controllers.conftest import eventually
from tests.controllers.kubelet import FakeKubelet, target_node

NS = "default"


def daemon_set(image: str = "agent:1", **spec: object) -> dict:
    pod_spec: dict = {"containers": [{"name": "c", "image": image}]}
    pod_spec.update(spec.pop("pod", {}))  # type: ignore[arg-type]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod_spec},
            **spec,
        },
    }


async def add_node(client, name: str, labels: dict | None = None, taints: list | None = None, **spec: object) -> None:
    node = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}, "spec": {"taints": taints or [], **spec}}
    await client.create(NODES, node)


@pytest.fixture
async def kubelet(client) -> AsyncIterator[FakeKubelet]:
    k = FakeKubelet(client).start()
    yield k
    await k.stop()


async def placement(client) -> dict[str, list[dict]]:
    pods = (await client.list(PODS, NS))["items"]
    result: dict[str, list[dict]] = {}
    for pod in pods:
        if not pod["metadata"].get("deletionTimestamp"):
            result.setdefault(target_node(pod) or "", []).append(pod)
    return result


async def nodes_are(client, *names: str) -> dict[str, list[dict]]:
    found = await placement(client)
    return found if sorted(found) == sorted(names) and all(len(v) == 1 for v in found.values()) else {}


async def ds_status(client, **want: int) -> dict:
    ds = await client.get(DAEMONSETS, "agent", NS)
    st = ds.get("status", {})
    ok = all(st.get(k) == v for k, v in want.items()) and st.get("observedGeneration") == ds["metadata"]["generation"]
    return st if ok else {}


async def test_places_one_pod_per_eligible_node(client, start_controllers) -> None:
    await add_node(client, "plain")
    await add_node(client, "tainted", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    await add_node(client, "cordoned", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}], unschedulable=True)
    await start_controllers("daemonset")
    await client.create(DAEMONSETS, daemon_set(), NS)
    found = await eventually(lambda: nodes_are(client, "plain", "cordoned"))
    pod = found["plain"][0]
    term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["plain"]}]}]
    tolerations = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute") in tolerations
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerations
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in tolerations
    assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
    revisions = (await client.list(CONTROLLERREVISIONS, NS))["items"]
    assert [r["metadata"]["labels"]["controller-revision-hash"] for r in revisions] == [pod["metadata"]["labels"]["controller-revision-hash"]]
    await eventually(lambda: ds_status(client, desiredNumberScheduled=2, currentNumberScheduled=2, numberMisscheduled=0))

    async def created() -> list[str]:
        return [e["message"] for e in (await client.list(EVENTS, NS))["items"] if e["reason"] == "SuccessfulCreate"]

    assert all(m.startswith("Created pod: agent-") for m in await eventually(created))


async def test_node_selector_follows_labels(client, start_controllers, kubelet) -> None:
    await add_node(client, "a", {"role": "edge"})
    await add_node(client, "b")
    await start_controllers("daemonset")
    await client.create(DAEMONSETS, daemon_set(pod={"nodeSelector": {"role": "edge"}}), NS)
    await eventually(lambda: nodes_are(client, "a"))
    await client.patch(NODES, "b", {"metadata": {"labels": {"role": "edge"}}}, "merge")
    await eventually(lambda: nodes_are(client, "a", "b"))
    await eventually(lambda: ds_status(client, desiredNumberScheduled=2, numberReady=2, numberAvailable=2))
    await client.patch(NODES, "a", {"metadata": {"labels": {"role": None}}}, "merge")
    await eventually(lambda: nodes_are(client, "b"))
    await eventually(lambda: ds_status(client, desiredNumberScheduled=1, currentNumberScheduled=1, numberMisscheduled=0))


async def test_rolling_update_max_unavailable(client, start_controllers, kubelet) -> None:
    for name in ("n1", "n2", "n3"):
        await add_node(client, name)
    await start_controllers("daemonset")
    await client.create(DAEMONSETS, daemon_set(), NS)
    await eventually(lambda: ds_status(client, numberAvailable=3, updatedNumberScheduled=3))
    kubelet.paused = True
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}
    await client.patch(DAEMONSETS, "agent", patch, "strategic", NS)

    async def one_replaced() -> dict:
        pods = [p for ps in (await placement(client)).values() for p in ps]
        return {"pods": pods} if sum(p["spec"]["containers"][0]["image"] == "agent:2" for p in pods) == 1 else {}

    pods = (await eventually(one_replaced))["pods"]
    # maxUnavailable 1: only one node was touched while the new pod is not ready.
    assert sum(p["spec"]["containers"][0]["image"] == "agent:1" for p in pods) == 2
    kubelet.paused = False
    await eventually(lambda: ds_status(client, numberAvailable=3, updatedNumberScheduled=3))
    images = {p["spec"]["containers"][0]["image"] for ps in (await placement(client)).values() for p in ps}
    assert images == {"agent:2"}
    assert len((await client.list(CONTROLLERREVISIONS, NS))["items"]) == 2


async def test_rolling_update_with_surge(client, start_controllers, kubelet) -> None:
    for name in ("n1", "n2"):
        await add_node(client, name)
    await start_controllers("daemonset")
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    await client.create(DAEMONSETS, daemon_set(updateStrategy=strategy), NS)
    await eventually(lambda: ds_status(client, numberAvailable=2))
    kubelet.paused = True
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}
    await client.patch(DAEMONSETS, "agent", patch, "strategic", NS)

    async def surged() -> dict:
        found = await placement(client)
        return found if sorted(len(v) for v in found.values()) == [1, 2] else {}

    await eventually(surged)
    kubelet.paused = False
    await eventually(lambda: ds_status(client, numberAvailable=2, updatedNumberScheduled=2))
    await eventually(lambda: nodes_are(client, "n1", "n2"))


async def test_on_delete_replaces_only_deleted_pods(client, start_controllers, kubelet) -> None:
    await add_node(client, "n1")
    await start_controllers("daemonset")
    await client.create(DAEMONSETS, daemon_set(updateStrategy={"type": "OnDelete"}), NS)
    await eventually(lambda: ds_status(client, numberAvailable=1))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}
    await client.patch(DAEMONSETS, "agent", patch, "strategic", NS)
    st = await eventually(lambda: ds_status(client, updatedNumberScheduled=0))
    assert st["numberAvailable"] == 1
    (pod,) = (await placement(client))["n1"]
    await client.delete(PODS, pod["metadata"]["name"], NS)

    async def replaced() -> bool:
        pods = (await placement(client)).get("n1", [])
        return len(pods) == 1 and pods[0]["spec"]["containers"][0]["image"] == "agent:2"

    await eventually(replaced)


def test_should_run_rules() -> None:
    ds = daemon_set(pod={"hostNetwork": True})
    node = {"metadata": {"name": "x", "labels": {}}, "spec": {"taints": [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]}}
    assert should_run(ds, node) == (True, True)
    evicting = {"metadata": {"name": "x"}, "spec": {"taints": [{"key": "gone", "effect": "NoExecute"}]}}
    assert should_run(ds, evicting) == (False, False)
    blocking = {"metadata": {"name": "x"}, "spec": {"taints": [{"key": "full", "effect": "NoSchedule"}]}}
    assert should_run(ds, blocking) == (False, True)


async def test_no_schedule_taint_keeps_running_pod_as_misscheduled(client, start_controllers, kubelet) -> None:
    await add_node(client, "n1")
    await start_controllers("daemonset")
    await client.create(DAEMONSETS, daemon_set(), NS)
    await eventually(lambda: ds_status(client, numberAvailable=1))
    (pod,) = (await placement(client))["n1"]
    await client.patch(NODES, "n1", {"spec": {"taints": [{"key": "maintenance", "effect": "NoSchedule"}]}}, "merge")
    await eventually(lambda: ds_status(client, desiredNumberScheduled=0, numberMisscheduled=1))
    assert [p["metadata"]["uid"] for p in (await placement(client))["n1"]] == [pod["metadata"]["uid"]]
    # NoExecute evicts: the pod goes.
    await client.patch(NODES, "n1", {"spec": {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}}, "merge")
    await eventually(lambda: ds_status(client, desiredNumberScheduled=0, numberMisscheduled=0, currentNumberScheduled=0))
    assert await placement(client) == {}

"""The scheduler in-process against a registry: binding, conditions and events."""

from __future__ import annotations

from sampan.client.interface import PODS
from sampan.client.local import LocalClient

from tests.scheduler.conftest import (
    bound_node, create_nodes, eventually, events_for, node_obj, pod_obj, wait_event,
)


async def test_binds_pod_and_records_scheduled_event(client: LocalClient, start_scheduler) -> None:
    await create_nodes(client, node_obj("n1"), node_obj("n2"))
    await start_scheduler()
    await client.create(PODS, pod_obj("web", cpu="100m"))
    node = await bound_node(client, "web")
    assert node in ("n1", "n2")
    pod = await client.get(PODS, "web", "default")
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"
    event = await wait_event(client, "web", "Scheduled")
    assert event["type"] == "Normal"
    assert event["message"] == f"Successfully assigned default/web to {node}"
    assert event["source"]["component"] == "default-scheduler"


async def test_unschedulable_pod_gets_condition_and_upstream_message(client: LocalClient, start_scheduler) -> None:
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    await create_nodes(
        client, node_obj("cp1", taints=[taint]), node_obj("cp2", taints=[taint]), node_obj("small", cpu="1")
    )
    await start_scheduler()
    await client.create(PODS, pod_obj("big", cpu="2"))
    expected = (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: "
        "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    )
    event = await wait_event(client, "big", "FailedScheduling")
    assert event["type"] == "Warning"
    assert event["message"] == expected

    async def condition() -> dict | None:
        pod = await client.get(PODS, "big", "default")
        found = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
        return found[0] if found else None

    cond = await eventually(condition)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", expected)
    assert not (await client.get(PODS, "big", "default"))["spec"].get("nodeName")


async def test_all_tainted_says_preemption_not_helpful(client: LocalClient, start_scheduler) -> None:
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    await create_nodes(client, *(node_obj(f"n{i}", taints=[taint]) for i in range(3)))
    await start_scheduler()
    await client.create(PODS, pod_obj("p"))
    event = await wait_event(client, "p", "FailedScheduling")
    assert event["message"] == (
        "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: gpu}. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )


async def test_pending_pod_scheduled_when_a_node_arrives(client: LocalClient, start_scheduler) -> None:
    sched = await start_scheduler()
    await client.create(PODS, pod_obj("early", cpu="500m"))
    await wait_event(client, "early", "FailedScheduling")
    assert "early" not in str(sched.queue._active)
    await create_nodes(client, node_obj("late"))
    assert await bound_node(client, "early") == "late"


async def test_pod_scheduled_after_another_pod_is_deleted(client: LocalClient, start_scheduler) -> None:
    await create_nodes(client, node_obj("only", cpu="1"))
    await start_scheduler()
    await client.create(PODS, pod_obj("first", cpu="800m"))
    await bound_node(client, "first")
    await client.create(PODS, pod_obj("second", cpu="800m"))
    await wait_event(client, "second", "FailedScheduling")
    await client.delete(PODS, "first", "default", grace_period_seconds=0)
    assert await bound_node(client, "second") == "only"


async def test_ignores_other_schedulers_and_bound_pods(client: LocalClient, start_scheduler) -> None:
    await create_nodes(client, node_obj("n1"))
    sched = await start_scheduler()
    await client.create(PODS, pod_obj("theirs", schedulerName="other-scheduler"))
    await client.create(PODS, pod_obj("mine"))
    await bound_node(client, "mine")
    await sched.idle()
    assert "default/theirs" not in sched.queue
    pod = await client.get(PODS, "theirs", "default")
    assert not pod["spec"].get("nodeName")
    assert await events_for(client, "theirs", "FailedScheduling") == []


async def test_assumed_pods_count_before_binding_lands(client: LocalClient, start_scheduler) -> None:
    # Ten pods that each need most of a node: each node must get exactly one.
    await create_nodes(client, *(node_obj(f"n{i}", cpu="1") for i in range(10)))
    sched = await start_scheduler()
    for i in range(10):
        await client.create(PODS, pod_obj(f"p{i}", cpu="700m"))
    nodes = [await bound_node(client, f"p{i}") for i in range(10)]
    assert sorted(nodes) == sorted(f"n{i}" for i in range(10))
    assert sched.bound == 10


ZONE = "topology.kubernetes.io/zone"


async def test_tolerations_and_node_affinity(client: LocalClient, start_scheduler) -> None:
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    await create_nodes(
        client,
        node_obj("db-node", taints=[taint], labels={"disk": "ssd"}),
        node_obj("web-node", labels={"disk": "hdd"}),
    )
    await start_scheduler()
    tolerant = pod_obj(
        "db", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
        nodeSelector={"disk": "ssd"},
    )
    await client.create(PODS, tolerant)
    await client.create(PODS, pod_obj("web"))
    assert await bound_node(client, "db") == "db-node"
    assert await bound_node(client, "web") == "web-node"


async def test_spread_and_anti_affinity_in_process(client: LocalClient, start_scheduler) -> None:
    await create_nodes(client, *(node_obj(f"{z}{i}", labels={ZONE: z}) for z in "ab" for i in range(2)))
    await start_scheduler()
    spread = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "web"}}}]
    for i in range(4):
        await client.create(PODS, pod_obj(f"web{i}", labels={"app": "web"}, topologySpreadConstraints=spread))
    zones = [(await bound_node(client, f"web{i}"))[0] for i in range(4)]
    assert sorted(zones) == ["a", "a", "b", "b"]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(5):
        await client.create(PODS, pod_obj(f"solo{i}", labels={"app": "solo"}, affinity=anti))
    event = await wait_event(client, "solo4", "FailedScheduling")
    placed = {await bound_node(client, f"solo{i}") for i in range(4)}
    assert placed == {"a0", "a1", "b0", "b1"}
    expected = "0/4 nodes are available: 4 node(s) didn't satisfy existing pods anti-affinity rules."
    assert event["message"].startswith(expected)


async def test_system_default_spread_follows_services(client: LocalClient, start_scheduler) -> None:
    from sampan.client.interface import SERVICES

    await create_nodes(client, node_obj("a"), node_obj("b"))
    await client.create(SERVICES, {"metadata": {"name": "api", "namespace": "default"},
                                   "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}})
    binpack = {"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]}]}
    sched = await start_scheduler(binpack)
    # Most-allocated scoring alone would stack the pods on one node; the default spread
    # over the Service's pods (hostname, maxSkew 3) scores the emptier node higher.
    for i in range(6):
        await client.create(PODS, pod_obj(f"api{i}", labels={"app": "api"}, cpu="100m"))
    nodes = [await bound_node(client, f"api{i}") for i in range(6)]
    await sched.idle()
    assert sorted(nodes).count("a") == 3 and sorted(nodes).count("b") == 3


async def test_reserve_and_permit_plugins(client: LocalClient, start_scheduler) -> None:
    from sampan.scheduler.framework import PLUGINS, Plugin, Status, plugin, unschedulable

    calls: list[tuple[str, str]] = []

    if "TestGate" not in PLUGINS:

        @plugin
        class TestGate(Plugin):
            name = "TestGate"

            def reserve(self, state, pod, node_name):  # type: ignore[no-untyped-def]
                calls.append(("reserve", pod.name))
                return None

            def unreserve(self, state, pod, node_name):  # type: ignore[no-untyped-def]
                calls.append(("unreserve", pod.name))

            def permit(self, state, pod, node_name) -> Status | None:  # type: ignore[no-untyped-def]
                return unschedulable("held at the gate") if pod.labels.get("gate") == "closed" else None

        PLUGINS["TestGate"].calls = calls  # type: ignore[attr-defined]
    calls = PLUGINS["TestGate"].calls  # type: ignore[attr-defined]
    calls.clear()
    await create_nodes(client, node_obj("n1"))
    await start_scheduler({"profiles": [{"plugins": {"multiPoint": {"enabled": [{"name": "TestGate"}]}}}]})
    await client.create(PODS, pod_obj("open", labels={"gate": "open"}))
    await client.create(PODS, pod_obj("closed", labels={"gate": "closed"}))
    assert await bound_node(client, "open") == "n1"
    event = await wait_event(client, "closed", "FailedScheduling")
    assert "held at the gate" in event["message"]
    assert not (await client.get(PODS, "closed", "default"))["spec"].get("nodeName")
    assert ("reserve", "open") in calls and ("unreserve", "closed") in calls
    assert ("unreserve", "open") not in calls


async def test_node_heartbeats_keep_cached_scores_but_changes_apply(client: LocalClient, start_scheduler) -> None:
    from sampan.client.interface import NODES

    await create_nodes(client, node_obj("n1", cpu="1"))
    sched = await start_scheduler()
    info = sched.cache.nodes["n1"]
    info.memo[12345] = 1

    async def patched(check) -> None:  # type: ignore[no-untyped-def]
        async def seen() -> bool:
            return check(sched.cache.nodes["n1"])

        await eventually(seen)

    heartbeat = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                            "lastHeartbeatTime": "2026-12-07T04:00:00Z"}]}}
    await client.patch(NODES, "n1", heartbeat, "strategic", subresource="status")
    await patched(lambda n: n.node["status"]["conditions"][0].get("lastHeartbeatTime"))
    assert sched.cache.nodes["n1"].memo.get(12345) == 1  # nothing the scheduler reads changed
    await client.patch(NODES, "n1", {"status": {"allocatable": {"cpu": "3"}}}, "strategic", subresource="status")
    await patched(lambda n: n.allocatable.cpu == 3000)
    assert 12345 not in sched.cache.nodes["n1"].memo
    await client.create(PODS, pod_obj("needs-two", cpu="2"))
    assert await bound_node(client, "needs-two") == "n1"

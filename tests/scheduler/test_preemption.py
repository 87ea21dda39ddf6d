"""Preemption and pod priority, in-process against a registry."""

from __future__ import annotations

import asyncio

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import PODS, ResourceRef
from sampan.client.local import LocalClient

from tests.scheduler.conftest import bound_node, create_nodes, eventually, node_obj, pod_obj, wait_event

PRIORITY_CLASSES = ResourceRef("scheduling.k8s.io", "v1", "priorityclasses", False)


async def priority_class(client: LocalClient, name: str, value: int, **extra: object) -> None:
    await client.create(PRIORITY_CLASSES, {"metadata": {"name": name}, "value": value, **extra})


async def play_kubelet(client: LocalClient) -> None:
    """Finishes deletions of bound pods, as a kubelet would once their containers stopped."""
    while True:
        for pod in (await client.list(PODS, "default"))["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                try:
                    await client.delete(PODS, pod["metadata"]["name"], "default", grace_period_seconds=0)
                except APIError:
                    pass
        await asyncio.sleep(0.05)


async def test_priority_resolved_at_admission(client: LocalClient) -> None:
    await priority_class(client, "high", 1000)
    pod = await client.create(PODS, pod_obj("p", priorityClassName="high"))
    assert pod["spec"]["priority"] == 1000
    assert pod["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    plain = await client.create(PODS, pod_obj("plain"))
    assert plain["spec"]["priority"] == 0 and "priorityClassName" not in plain["spec"]
    critical = await client.create(PODS, pod_obj("crit", priorityClassName="system-node-critical"))
    assert critical["spec"]["priority"] == 2000001000


async def test_global_default_priority_class(client: LocalClient) -> None:
    await priority_class(client, "default-prio", 50, globalDefault=True, preemptionPolicy="Never")
    pod = await client.create(PODS, pod_obj("p"))
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == ("default-prio", 50)
    assert pod["spec"]["preemptionPolicy"] == "Never"


async def test_priority_admission_errors(client: LocalClient) -> None:
    with pytest.raises(APIError) as missing:
        await client.create(PODS, pod_obj("p", priorityClassName="nope"))
    assert missing.value.code == 403
    assert missing.value.status["message"] == 'pods "p" is forbidden: no PriorityClass with name nope was found'
    await priority_class(client, "high", 1000)
    with pytest.raises(APIError) as mismatch:
        await client.create(PODS, pod_obj("q", priorityClassName="high", priority=5))
    assert mismatch.value.code == 403
    assert "the integer value of priority (5) must not be provided in pod spec" in mismatch.value.status["message"]


async def test_preemption_evicts_lowest_priority_victims(client: LocalClient, start_scheduler) -> None:
    await priority_class(client, "low", 10)
    await priority_class(client, "mid", 20)
    await priority_class(client, "high", 1000)
    await create_nodes(client, node_obj("n1", cpu="2"), node_obj("n2", cpu="2"))
    await start_scheduler()
    # n1 holds a low and a mid pod, n2 two mid pods: n1 is cheaper to preempt on.
    for name, node, cls in (("low1", "n1", "low"), ("mid1", "n1", "mid"), ("mid2", "n2", "mid"), ("mid3", "n2", "mid")):
        await client.create(PODS, pod_obj(name, cpu="900m", priorityClassName=cls, nodeName=node))
    kubelet = asyncio.create_task(play_kubelet(client))
    try:
        high = await client.create(PODS, pod_obj("urgent", cpu="1", priorityClassName="high"))
        preempted = await wait_event(client, "low1", "Preempted")
        assert preempted["message"] == f"Preempted by pod {high['metadata']['uid']} on node n1"
        assert await bound_node(client, "urgent") == "n1"
    finally:
        kubelet.cancel()
    names = {p["metadata"]["name"] for p in (await client.list(PODS, "default"))["items"]}
    assert names == {"mid1", "mid2", "mid3", "urgent"}


async def test_preemption_sets_nominated_node_and_disruption_condition(client: LocalClient, start_scheduler) -> None:
    await priority_class(client, "low", 10)
    await priority_class(client, "high", 1000)
    await create_nodes(client, node_obj("n1", cpu="1"))
    await start_scheduler()
    await client.create(PODS, pod_obj("victim", cpu="800m", priorityClassName="low", nodeName="n1"))
    await client.create(PODS, pod_obj("urgent", cpu="800m", priorityClassName="high"))

    async def nominated() -> bool:
        pod = await client.get(PODS, "urgent", "default")
        return pod["status"].get("nominatedNodeName") == "n1"

    await eventually(nominated)
    victim = await client.get(PODS, "victim", "default")
    assert victim["metadata"].get("deletionTimestamp")
    disruption = [c for c in victim["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert disruption and disruption[0]["reason"] == "PreemptionByScheduler"
    failed = await wait_event(client, "urgent", "FailedScheduling")
    assert failed["message"].startswith("0/1 nodes are available: 1 Insufficient cpu.")


async def test_no_preemption_with_policy_never(client: LocalClient, start_scheduler) -> None:
    await priority_class(client, "low", 10)
    await priority_class(client, "polite", 1000, preemptionPolicy="Never")
    await create_nodes(client, node_obj("n1", cpu="1"))
    await start_scheduler()
    await client.create(PODS, pod_obj("running", cpu="800m", priorityClassName="low", nodeName="n1"))
    await client.create(PODS, pod_obj("polite", cpu="800m", priorityClassName="polite"))
    event = await wait_event(client, "polite", "FailedScheduling")
    assert event["message"] == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    )
    assert not (await client.get(PODS, "running", "default"))["metadata"].get("deletionTimestamp")


async def test_higher_priority_pod_scheduled_first(client: LocalClient, start_scheduler) -> None:
    await priority_class(client, "high", 1000)
    await create_nodes(client, node_obj("n1", cpu="1"))
    for i in range(3):
        await client.create(PODS, pod_obj(f"low{i}", cpu="600m"))
    await client.create(PODS, pod_obj("vip", cpu="600m", priorityClassName="high"))
    await start_scheduler()
    assert await bound_node(client, "vip") == "n1"
    for i in range(3):
        assert not (await client.get(PODS, f"low{i}", "default"))["spec"].get("nodeName")

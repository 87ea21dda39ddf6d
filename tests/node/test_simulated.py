"""The simulated agent against a real in-process server over HTTPS."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sampan.api.errors import APIError
from sampan.api.schemas import KUBERNETES_VERSION
from sampan.client.http import HttpClient
from sampan.client.interface import LEASES, NODES, PODS, is_not_found
from sampan.node.simulated import SimulatedAgent, SimulatedOptions, pod_cidr_for
from sampan.node.simulated_pods import PodAddresses, PodRecord, normalized_image, parse_duration, running_status
from sampan.server import RunningServer
from tests.harness import api_server, eventually, http_client


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with api_server(tmp_path) as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[HttpClient]:
    async with http_client(server) as http:
        yield http


@pytest.fixture
async def agent(client: HttpClient) -> AsyncIterator[SimulatedAgent]:
    sim = SimulatedAgent(client, SimulatedOptions(count=3, renew_interval=0.2, job_duration=0.2))
    await sim.start()
    yield sim
    await sim.stop()


def pod(name: str, node: str | None = "sim-1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": spec.pop("annotations", {})},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
    }
    if node:
        body["spec"]["nodeName"] = node
    return body


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def test_nodes_are_registered_like_kubelets(agent: SimulatedAgent, client: HttpClient) -> None:
    nodes = (await client.list(NODES))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["sim-0", "sim-1", "sim-2"]
    node = await client.get(NODES, "sim-1")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "sim-1"
    assert labels["kubernetes.io/os"] == "linux" and labels["type"] == "simulated"
    status = node["status"]
    assert status["capacity"] == {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    assert status["allocatable"] == status["capacity"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"
    }
    internal = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
    assert ipaddress.ip_address(internal) in ipaddress.ip_network("198.18.0.0/15")
    minor = KUBERNETES_VERSION.split(".")[1]
    assert status["nodeInfo"]["kubeletVersion"] == f"v1.{minor}.0"
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert "podCIDR" not in node.get("spec", {})  # node IPAM's job (not running here)


async def test_leases_are_renewed(agent: SimulatedAgent, client: HttpClient) -> None:
    lease = await client.get(LEASES, "sim-2", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "sim-2"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    first = lease["spec"]["renewTime"]

    async def renewed() -> bool:
        return (await client.get(LEASES, "sim-2", "kube-node-lease"))["spec"]["renewTime"] != first

    await eventually(renewed)


async def test_bound_pod_runs(agent: SimulatedAgent, client: HttpClient) -> None:
    created = await client.create(PODS, pod("web"), "default")

    async def running() -> dict[str, Any] | None:
        found = await client.get(PODS, "web", "default")
        return found if found["status"].get("phase") == "Running" else None

    found = await eventually(running)
    status = found["status"]
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("10.42.1.0/24")
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == agent.node_ip("sim-1")
    assert status["qosClass"] == created["status"]["qosClass"] == "BestEffort"
    assert status["startTime"]
    for kind in ("Initialized", "ContainersReady", "Ready", "PodScheduled"):
        assert condition(found, kind)["status"] == "True", kind
    (cs,) = status["containerStatuses"]
    assert cs["ready"] and cs["started"] and "running" in cs["state"]
    assert cs["image"] == "docker.io/library/nginx:latest"
    assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert cs["containerID"].startswith("containerd://")


async def test_pod_bound_through_binding_runs(agent: SimulatedAgent, client: HttpClient) -> None:
    await client.create(PODS, pod("late", node=None), "default")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "late"},
               "target": {"kind": "Node", "name": "sim-0"}}
    await client.create(PODS, binding, "default", subresource="binding")

    async def running() -> bool:
        return (await client.get(PODS, "late", "default"))["status"].get("phase") == "Running"

    await eventually(running)


async def test_pods_on_other_nodes_are_left_alone(agent: SimulatedAgent, client: HttpClient) -> None:
    await client.create(PODS, pod("elsewhere", node="real-node"), "default")
    await client.create(PODS, pod("marker", node="sim-0"), "default")

    async def marker_running() -> bool:
        return (await client.get(PODS, "marker", "default"))["status"].get("phase") == "Running"

    await eventually(marker_running)
    assert (await client.get(PODS, "elsewhere", "default"))["status"]["phase"] == "Pending"


async def test_finishing_pods(agent: SimulatedAgent, client: HttpClient) -> None:
    quick = {"sampan.dev/simulate-duration": "100ms"}
    await client.create(PODS, pod("ok", restartPolicy="Never", annotations=quick), "default")
    failing = {**quick, "sampan.dev/simulate-exit-code": "3"}
    await client.create(PODS, pod("bad", restartPolicy="Never", annotations=failing), "default")
    job_pod = pod("job-x", restartPolicy="OnFailure")
    job_pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "x", "uid": "0000", "controller": True}
    ]
    await client.create(PODS, job_pod, "default")

    async def phase(name: str) -> str:
        return (await client.get(PODS, name, "default"))["status"].get("phase", "")

    async def done() -> bool:
        return all([await phase(n) in ("Succeeded", "Failed") for n in ("ok", "bad", "job-x")])

    await eventually(done)
    ok = await client.get(PODS, "ok", "default")
    assert ok["status"]["phase"] == "Succeeded"
    assert ok["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert condition(ok, "Ready")["reason"] == "PodCompleted"
    bad = await client.get(PODS, "bad", "default")
    assert bad["status"]["phase"] == "Failed"
    terminated = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert await phase("job-x") == "Succeeded"


async def test_on_failure_pod_restarts_in_place(agent: SimulatedAgent, client: HttpClient) -> None:
    notes = {"sampan.dev/simulate-duration": "100ms", "sampan.dev/simulate-exit-code": "1"}
    await client.create(PODS, pod("flaky", restartPolicy="OnFailure", annotations=notes), "default")

    async def restarted() -> dict[str, Any] | None:
        found = await client.get(PODS, "flaky", "default")
        statuses = found["status"].get("containerStatuses") or [{}]
        return found if statuses[0].get("restartCount", 0) >= 1 else None

    found = await eventually(restarted)
    assert found["status"]["phase"] == "Running"
    assert found["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1


async def test_deleted_pod_is_removed(agent: SimulatedAgent, client: HttpClient) -> None:
    await client.create(PODS, pod("doomed"), "default")

    async def running() -> bool:
        return (await client.get(PODS, "doomed", "default"))["status"].get("phase") == "Running"

    await eventually(running)
    pending = await client.delete(PODS, "doomed", "default")
    assert pending["metadata"]["deletionTimestamp"]  # graceful: the node has to stop it

    async def gone() -> bool:
        try:
            await client.get(PODS, "doomed", "default")
        except Exception as exc:
            return is_not_found(exc)
        return False

    await eventually(gone)


async def test_live_agent_sets_a_wrongly_unknown_node_right(agent: SimulatedAgent, client: HttpClient) -> None:
    await client.create(PODS, pod("steady", node="sim-2"), "default")

    async def running() -> bool:
        return (await client.get(PODS, "steady", "default"))["status"].get("phase") == "Running"

    await eventually(running)
    # What node lifecycle does after missed heartbeats, done by hand while the agent is alive.
    await client.patch(PODS, "steady", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                       "strategic", "default", subresource="status")
    await client.patch(NODES, "sim-2", {"status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}}, "strategic", subresource="status")

    async def repaired() -> bool:
        node_ok = condition(await client.get(NODES, "sim-2"), "Ready")["status"] == "True"
        pod_ok = condition(await client.get(PODS, "steady", "default"), "Ready")["status"] == "True"
        return node_ok and pod_ok

    await eventually(repaired)


async def test_deleted_node_stays_deleted(agent: SimulatedAgent, client: HttpClient) -> None:
    await client.delete(NODES, "sim-0")

    async def forgotten() -> bool:
        return "sim-0" not in agent.uids

    await eventually(forgotten)
    await client.delete(LEASES, "sim-0", "kube-node-lease")
    await asyncio.sleep(1.0)  # five renewal intervals
    with pytest.raises(APIError) as caught:
        await client.get(LEASES, "sim-0", "kube-node-lease")
    assert caught.value.code == 404
    with pytest.raises(APIError):
        await client.get(NODES, "sim-0")
    # The other nodes carry on.
    assert condition(await client.get(NODES, "sim-1"), "Ready")["status"] == "True"


async def test_restarted_agent_keeps_pods_and_nodes(client: HttpClient) -> None:
    options = SimulatedOptions(count=1, renew_interval=0.2)
    first = SimulatedAgent(client, options)
    await first.start()
    await client.create(PODS, pod("stays", node="sim-0"), "default")

    async def running() -> dict[str, Any] | None:
        found = await client.get(PODS, "stays", "default")
        return found if found["status"].get("phase") == "Running" else None

    before = await eventually(running)
    await first.stop()
    # Someone marked the node not ready while the agent was away.
    await client.patch(NODES, "sim-0", {"status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}}, "strategic", subresource="status")
    second = SimulatedAgent(client, SimulatedOptions(count=1, renew_interval=0.2))
    await second.start()
    try:
        assert condition(await client.get(NODES, "sim-0"), "Ready")["status"] == "True"
        await client.create(PODS, pod("next", node="sim-0"), "default")
        found = await eventually(running)
        assert found["status"]["podIP"] == before["status"]["podIP"]

        async def next_running() -> dict[str, Any] | None:
            other = await client.get(PODS, "next", "default")
            return other if other["status"].get("phase") == "Running" else None

        other = await eventually(next_running)
        assert other["status"]["podIP"] != before["status"]["podIP"]
    finally:
        await second.stop()


def test_durations_and_images() -> None:
    assert parse_duration("2s") == 2 and parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25
    assert parse_duration("1.5") == 1.5
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert normalized_image("nginx") == "docker.io/library/nginx:latest"
    assert normalized_image("bitnami/redis:7") == "docker.io/bitnami/redis:7"
    assert normalized_image("registry.k8s.io/pause:3.9") == "registry.k8s.io/pause:3.9"


def test_pod_cidrs_and_addresses() -> None:
    assert pod_cidr_for(0, 3, "10.42.0.0/16") == "10.42.0.0/24"
    assert pod_cidr_for(255, 256, "10.42.0.0/16") == "10.42.255.0/24"
    # More nodes than /24s: blocks shrink instead of overlapping.
    assert pod_cidr_for(1, 5000, "10.42.0.0/16") == "10.42.0.8/29"
    assert pod_cidr_for(4999, 5000, "10.0.0.0/8") == "10.19.135.0/24"
    addresses = PodAddresses("10.42.3.0/24")
    first, second = addresses.get("a"), addresses.get("b")
    assert (first, second) == ("10.42.3.2", "10.42.3.3")
    addresses.release("a")
    assert addresses.get("a") != second


def test_readiness_gates_hold_ready_back() -> None:
    record = PodRecord("uid", "10.42.0.2", "2025-01-01T00:00:00Z", 0.0)
    gated: dict[str, Any] = pod("gated")
    gated["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}]
    gated["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    status = running_status(gated, record, "198.18.0.2", "2025-01-01T00:00:05Z")
    ready = condition({"status": status}, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")
    assert condition({"status": status}, "ContainersReady")["status"] == "True"
    gated["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"}]
    status = running_status(gated, record, "198.18.0.2", "2025-01-01T00:00:05Z")
    assert condition({"status": status}, "Ready")["status"] == "True"
    assert condition({"status": status}, "example.com/lb")["status"] == "True"  # someone else's, kept
    assert status["qosClass"] == "BestEffort"


def test_heartbeats_are_not_capped_by_the_registration_limit() -> None:
    # 5,000 nodes renew 500 leases/s: 64 in flight would need a 0.13 s server to keep up.
    from sampan.node.simulated import heartbeat_slots

    assert heartbeat_slots(SimulatedOptions(count=5000)) == 500
    assert heartbeat_slots(SimulatedOptions(count=20)) == 64
    assert heartbeat_slots(SimulatedOptions(count=5000, heartbeats_in_flight=100)) == 100

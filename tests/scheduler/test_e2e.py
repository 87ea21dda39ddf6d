"""End to end: the scheduler inside a real ``sampan server`` process, driven by kubectl,
and the scheduler run on its own over the HTTP client."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from sampan.client.http import HttpClient
from sampan.client.interface import NODES, PODS
from sampan.scheduler import Scheduler
from sampan.server import ServerOptions, start_server

from tests.e2e.cluster import Cluster, cluster, needs_kubectl  # noqa: F401
from tests.scheduler.conftest import eventually, node_obj, pod_obj, wait_event


def _ready_node(name: str) -> dict:
    node = node_obj(name, cpu="2", memory="4Gi")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for cond in node["status"]["conditions"]:
        cond["lastHeartbeatTime"] = cond["lastTransitionTime"] = stamp
    return node


def _wait_kubectl(cluster: Cluster, *args: str, want: str, timeout: float = 20) -> str:  # noqa: F811
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.kubectl(*args).stdout
        if want in out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{want!r} not in output of kubectl {' '.join(args)}:\n{out}")
        time.sleep(0.2)


@needs_kubectl
def test_server_schedules_pods_created_with_kubectl(cluster: Cluster) -> None:  # noqa: F811
    cluster.kubectl("create", "-f", "-", input=json.dumps(_ready_node("sched-n1")))
    cluster.kubectl("run", "web", "--image=nginx:1.25", "--restart=Never")
    _wait_kubectl(cluster, "get", "pod", "web", "-o", "jsonpath={.spec.nodeName}", want="sched-n1")
    describe = _wait_kubectl(cluster, "describe", "pod", "web", want="Successfully assigned default/web to sched-n1")
    assert "Scheduled" in describe and "default-scheduler" in describe
    conditions = cluster.kubectl("get", "pod", "web", "-o", "jsonpath={.status.conditions[0].type}").stdout
    assert conditions == "PodScheduled"

    cluster.kubectl("run", "picky", "--image=nginx:1.25", "--restart=Never", "--overrides",
                    json.dumps({"spec": {"nodeSelector": {"disk": "nvme"}}}))
    message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    describe = _wait_kubectl(cluster, "describe", "pod", "picky", want="FailedScheduling")
    assert message in describe
    reason = cluster.kubectl("get", "pod", "picky", "-o", "jsonpath={.status.conditions[0].reason}").stdout
    assert reason == "Unschedulable"


async def test_scheduler_runs_on_its_own_over_http(tmp_path: Path) -> None:
    server = await start_server(
        ServerOptions(data_dir=tmp_path, port=0, datastore="memory", agent=False, controllers=[], scheduler=False)
    )
    assert server.scheduler is None
    client = HttpClient.from_kubeconfig(server.kubeconfig)
    sched = Scheduler(HttpClient.from_kubeconfig(server.kubeconfig))
    try:
        await client.create(NODES, node_obj("remote-1", cpu="1"))
        await sched.start()
        await client.create(PODS, pod_obj("a", cpu="600m"))
        await client.create(PODS, pod_obj("b", cpu="600m"))

        async def one_bound() -> list[str]:
            pods = (await client.list(PODS, "default"))["items"]
            return [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == "remote-1"]

        bound = await eventually(one_bound)
        assert len(bound) == 1
        other = "b" if bound == ["a"] else "a"
        event = await wait_event(client, other, "FailedScheduling")  # type: ignore[arg-type]
        assert event["message"].startswith("0/1 nodes are available: 1 Insufficient cpu.")
    finally:
        await sched.stop()
        await sched.client.close()
        await client.close()
        await server.stop()


async def test_server_starts_and_stops_its_scheduler(tmp_path: Path) -> None:
    options = ServerOptions(data_dir=tmp_path, port=0, datastore="memory", agent=False, controllers=[])
    server = await start_server(options)
    try:
        assert server.scheduler is not None
        client = server.scheduler.client
        await client.create(NODES, node_obj("inproc"))
        await client.create(PODS, pod_obj("p"))

        async def bound() -> str:
            return (await client.get(PODS, "p", "default"))["spec"].get("nodeName") or ""

        assert await eventually(bound) == "inproc"
    finally:
        await server.stop()


async def test_server_reads_a_scheduler_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "scheduler.yaml"
    config.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "profiles:\n"
        "- schedulerName: default-scheduler\n"
        "  pluginConfig:\n"
        "  - name: NodeResourcesFit\n"
        "    args: {scoringStrategy: {type: MostAllocated}}\n"
    )
    options = ServerOptions(
        data_dir=tmp_path / "data", port=0, datastore="memory", agent=False, controllers=[], scheduler_config=config
    )
    server = await start_server(options)
    try:
        assert server.scheduler is not None
        fit = server.scheduler.framework.plugins["NodeResourcesFit"]
        assert fit.strategy == "MostAllocated"  # type: ignore[attr-defined]
        client = server.scheduler.client
        await client.create(NODES, node_obj("busy"))
        await client.create(NODES, node_obj("idle"))
        await client.create(PODS, pod_obj("first", cpu="2", nodeName="busy"))
        await client.create(PODS, pod_obj("packed", cpu="500m"))

        async def bound() -> str:
            return (await client.get(PODS, "packed", "default"))["spec"].get("nodeName") or ""

        assert await eventually(bound) == "busy"  # bin packing: onto the fuller node
    finally:
        await server.stop()


@needs_kubectl
def test_deployment_on_simulated_nodes(tmp_path: Path) -> None:
    """Real processes: `sampan server` (scheduler in it) and `sampan agent --simulate 3`;
    a Deployment created with kubectl ends up Running, spread over the three nodes."""
    from tests.e2e.cluster import start_cluster, start_process, stop_process

    cluster = start_cluster(tmp_path)
    agent = None
    try:
        agent, _ = start_process(
            ["agent", "--simulate", "3", "--kubeconfig", str(cluster.kubeconfig), "--name-prefix", "sched-sim-"]
        )
        cluster.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=6")
        deadline = time.monotonic() + 60
        while True:
            pods = json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            if len(running) == 6:
                break
            assert time.monotonic() < deadline, f"pods not running: {[p['status'] for p in pods]}"
            time.sleep(0.3)
        nodes = {p["spec"]["nodeName"] for p in running}
        assert nodes == {"sched-sim-0", "sched-sim-1", "sched-sim-2"}
        events = cluster.kubectl("get", "events", "--field-selector", "reason=Scheduled", "-o", "json").stdout
        messages = [e["message"] for e in json.loads(events)["items"]]
        assert sum(m.startswith("Successfully assigned default/web-") for m in messages) == 6
    finally:
        if agent is not None:
            stop_process(agent)
        cluster.stop()

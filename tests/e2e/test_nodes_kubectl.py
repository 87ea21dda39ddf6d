"""Simulated nodes end to end: a real ``sampan server`` and a real ``sampan agent --simulate 3``
process, driven with kubectl: nodes, cordon, drain against a PodDisruptionBudget, and what
happens to pods when the agent stops.

The server runs with a 3 s node monitor grace period and 2 s default toleration seconds
(hidden flags named after upstream's) so a dead node's pods go in seconds, not minutes.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cluster import KUBECTL, Cluster, get_json, needs_kubectl, start_cluster, start_process, stop_process
from tests.e2e.cluster import wait_for

pytestmark = needs_kubectl

SERVER_FLAGS = (
    "--node-monitor-grace-period", "3",
    "--default-not-ready-toleration-seconds", "2",
    "--default-unreachable-toleration-seconds", "2",
)


class Agent:
    def __init__(self, proc: subprocess.Popen[str], output: list[str]) -> None:
        self.proc, self.output = proc, output


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("sampan"), "memory", *SERVER_FLAGS)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def agent(cluster: Cluster) -> Iterator[Agent]:
    args = ["agent", "--simulate", "3", "--kubeconfig", str(cluster.kubeconfig), "--node-lease-renew-interval", "0.5"]
    proc, output = start_process(args)
    try:
        yield Agent(proc, output)
    finally:
        stop_process(proc)


def apply_pod(cluster: Cluster, name: str, node: str, **labels: str) -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))


def pod_running(cluster: Cluster, name: str) -> bool:
    result = cluster.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}", check=False)
    return result.stdout == "Running"


def node_rows(cluster: Cluster) -> dict[str, list[str]]:
    lines = cluster.kubectl("get", "nodes", "--no-headers").stdout.splitlines()
    return {line.split()[0]: line.split()[1:] for line in lines}


def taints(cluster: Cluster, node: str) -> set[tuple[str, str]]:
    spec = get_json(cluster, "node", node).get("spec") or {}
    return {(t["key"], t["effect"]) for t in spec.get("taints") or []}


def test_nodes_are_listed(cluster: Cluster, agent: Agent) -> None:
    rows = wait_for(lambda: (r := node_rows(cluster)) and len(r) == 3 and r)
    assert sorted(rows) == ["sim-0", "sim-1", "sim-2"]
    assert all(row[0] == "Ready" for row in rows.values())
    wide = cluster.kubectl("get", "node", "sim-1", "-o", "wide", "--no-headers").stdout.split()
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert wide[4] == f"v{version['major']}.{version['minor']}.0"
    assert wide[5].startswith("198.18.")  # INTERNAL-IP
    described = cluster.kubectl("describe", "node", "sim-1").stdout
    assert "kubelet is posting ready status" in described
    assert "PodCIDR:" in described


def test_cordon_and_uncordon(cluster: Cluster, agent: Agent) -> None:
    assert "cordoned" in cluster.kubectl("cordon", "sim-1").stdout
    wait_for(lambda: node_rows(cluster)["sim-1"][0] == "Ready,SchedulingDisabled")
    wait_for(lambda: ("node.kubernetes.io/unschedulable", "NoSchedule") in taints(cluster, "sim-1"))
    assert "uncordoned" in cluster.kubectl("uncordon", "sim-1").stdout
    wait_for(lambda: not taints(cluster, "sim-1"))
    assert node_rows(cluster)["sim-1"][0] == "Ready"


def test_drain_waits_for_the_disruption_budget(cluster: Cluster, agent: Agent) -> None:
    apply_pod(cluster, "web-a", "sim-0", app="web")
    apply_pod(cluster, "web-b", "sim-1", app="web")
    wait_for(lambda: pod_running(cluster, "web-a") and pod_running(cluster, "web-b"))
    # Pod addresses come from the block node IPAM gave the node.
    cidr = get_json(cluster, "node", "sim-0")["spec"]["podCIDR"]
    pod_ip = get_json(cluster, "pod", "web-a")["status"]["podIP"]
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(cidr)
    cluster.kubectl("create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=2")

    def budget(allowed: int, healthy: int) -> bool:
        status = get_json(cluster, "pdb", "web").get("status") or {}
        return status.get("disruptionsAllowed") == allowed and status.get("currentHealthy") == healthy

    wait_for(lambda: budget(0, 2))
    cmd = [str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cluster.cache),
           "drain", "sim-0", "--force", "--ignore-daemonsets", "--timeout=120s"]
    drain = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(drain.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("disruption budget" in line for line in output), timeout=60)
        assert drain.poll() is None  # still retrying
        assert pod_running(cluster, "web-a")
        # A third healthy pod lets one disruption happen; drain's next retry gets through.
        apply_pod(cluster, "web-c", "sim-2", app="web")
        assert drain.wait(90) == 0, "".join(output)
    finally:
        stop_process(drain)  # type: ignore[arg-type]
    reader.join(5)
    text = "".join(output)
    assert "Cannot evict pod as it would violate the pod's disruption budget." in text
    assert "pod/web-a evicted" in text and "node/sim-0 drained" in text
    assert "NotFound" in cluster.kubectl("get", "pod", "web-a", check=False).stderr
    assert node_rows(cluster)["sim-0"][0] == "Ready,SchedulingDisabled"
    cluster.kubectl("uncordon", "sim-0")
    cluster.kubectl("delete", "pdb", "web")


def test_stopped_agent_makes_nodes_not_ready_and_pods_go(cluster: Cluster, agent: Agent) -> None:
    apply_pod(cluster, "victim", "sim-2", app="victim")
    wait_for(lambda: pod_running(cluster, "victim"))
    tolerations = get_json(cluster, "pod", "victim")["spec"]["tolerations"]
    assert {(t["key"], t.get("tolerationSeconds")) for t in tolerations} == {
        ("node.kubernetes.io/not-ready", 2), ("node.kubernetes.io/unreachable", 2)
    }
    stop_process(agent.proc)

    wait_for(lambda: all(row[0] == "NotReady" for row in node_rows(cluster).values()))
    assert ("node.kubernetes.io/unreachable", "NoExecute") in wait_for(lambda: taints(cluster, "sim-2"))
    ready = next(c for c in get_json(cluster, "node", "sim-2")["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["message"]) == ("Unknown", "Kubelet stopped posting node status.")

    def evicted() -> dict[str, Any] | None:
        pod = get_json(cluster, "pod", "victim")
        return pod if pod["metadata"].get("deletionTimestamp") else None

    pod = wait_for(evicted)
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["DisruptionTarget"]["reason"] == "DeletionByTaintManager"
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=sim-2").stdout
    assert "NodeNotReady" in events
    # Nothing runs the dead node's pods any more: they stay Terminating, as upstream.
    assert "Terminating" in cluster.kubectl("get", "pod", "victim").stdout


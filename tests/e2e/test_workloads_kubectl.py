"""Workload controllers end to end: a real ``sampan server`` process driven by the real kubectl;
a stand-in kubelet (over HTTP, in a thread) schedules pods and reports them Running and Ready."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controllers.kubelet import FakeKubelet, KubeletThread
from tests.e2e.cluster import Cluster, cluster, get_json, needs_kubectl, start_cluster, start_process, stop_process  # noqa: F401
from tests.e2e.cluster import wait_for

pytestmark = needs_kubectl


@pytest.fixture(scope="module")
def kubelet(cluster: Cluster) -> Iterator[FakeKubelet]:  # noqa: F811
    with KubeletThread(str(cluster.kubeconfig)) as running:
        yield running


def rollout_status(cluster: Cluster, what: str) -> str:  # noqa: F811
    return cluster.kubectl("rollout", "status", what, "--timeout=60s", timeout=90).stdout


def test_deployment_rollout_history_undo(cluster: Cluster, kubelet: FakeKubelet) -> None:  # noqa: F811
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=3")
    assert 'deployment "web" successfully rolled out' in rollout_status(cluster, "deploy/web")
    table = cluster.kubectl("get", "deploy", "web").stdout
    assert "3/3" in table

    cluster.kubectl("scale", "deploy", "web", "--replicas=5")
    assert "successfully rolled out" in rollout_status(cluster, "deploy/web")
    assert get_json(cluster, "deploy", "web")["status"]["availableReplicas"] == 5

    cluster.kubectl("set", "image", "deploy/web", "nginx=nginx:2")
    assert "successfully rolled out" in rollout_status(cluster, "deploy/web")
    history = cluster.kubectl("rollout", "history", "deploy/web").stdout
    assert "REVISION" in history and "1 " in history and "2 " in history
    detail = cluster.kubectl("rollout", "history", "deploy/web", "--revision=1").stdout
    assert "nginx:1" in detail

    assert "rolled back" in cluster.kubectl("rollout", "undo", "deploy/web").stdout
    assert "successfully rolled out" in rollout_status(cluster, "deploy/web")
    d = get_json(cluster, "deploy", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    sets = get_json(cluster, "rs", "-l", "app=web")["items"]
    assert len(sets) == 2  # the undo reused revision 1's ReplicaSet
    events = cluster.kubectl("describe", "deploy", "web").stdout
    assert "ScalingReplicaSet" in events and "Scaled up replica set web-" in events


def test_pause_resume_restart(cluster: Cluster, kubelet: FakeKubelet) -> None:  # noqa: F811
    cluster.kubectl("create", "deployment", "paused", "--image=nginx:1", "--replicas=2")
    rollout_status(cluster, "deploy/paused")
    cluster.kubectl("rollout", "pause", "deploy/paused")
    cluster.kubectl("set", "image", "deploy/paused", "nginx=nginx:2")

    def paused_condition() -> bool:
        conds = get_json(cluster, "deploy", "paused")["status"].get("conditions", [])
        return any(c["type"] == "Progressing" and c["reason"] == "DeploymentPaused" for c in conds)

    wait_for(paused_condition)
    assert len(get_json(cluster, "rs", "-l", "app=paused")["items"]) == 1
    undo = cluster.kubectl("rollout", "undo", "deploy/paused", check=False)
    assert undo.returncode != 0 and "paused" in undo.stderr
    cluster.kubectl("rollout", "resume", "deploy/paused")
    assert "successfully rolled out" in rollout_status(cluster, "deploy/paused")
    assert len(get_json(cluster, "rs", "-l", "app=paused")["items"]) == 2

    cluster.kubectl("rollout", "restart", "deploy/paused")
    assert "successfully rolled out" in rollout_status(cluster, "deploy/paused")
    sets = get_json(cluster, "rs", "-l", "app=paused")["items"]
    assert len(sets) == 3
    newest = max(sets, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))
    assert "kubectl.kubernetes.io/restartedAt" in newest["spec"]["template"]["metadata"]["annotations"]
    assert newest["spec"]["replicas"] == 2


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: "postgres:16"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def test_statefulset_ordering(cluster: Cluster, kubelet: FakeKubelet) -> None:  # noqa: F811
    kubelet.paused = True  # pods stay Pending: the set must stop at db-0
    try:
        cluster.kubectl("apply", "-f", "-", input=STATEFULSET)
        wait_for(lambda: "db-0" in cluster.kubectl("get", "pods", "-l", "app=db", "-o", "name").stdout)
        time.sleep(0.5)  # give the controller a chance to (wrongly) go on
        assert cluster.kubectl("get", "pods", "-l", "app=db", "-o", "name").stdout.split() == ["pod/db-0"]
    finally:
        kubelet.paused = False
    assert "roll out complete: 3 new pods have been updated" in rollout_status(cluster, "statefulset/db")
    pods = get_json(cluster, "pods", "-l", "app=db")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["db-0", "db-1", "db-2"]
    claims = cluster.kubectl("get", "pvc", "-o", "name").stdout.split()
    assert {"persistentvolumeclaim/data-db-0", "persistentvolumeclaim/data-db-2"} <= set(claims)
    created = [p["metadata"]["creationTimestamp"] for p in sorted(pods, key=lambda p: p["metadata"]["name"])]
    assert created == sorted(created)
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=db", "-o", "json").stdout
    assert "create Pod db-0 in StatefulSet db successful" in events

    cluster.kubectl("set", "image", "sts/db", "c=postgres:17")
    assert "roll out complete" in rollout_status(cluster, "sts/db")
    images = {p["spec"]["containers"][0]["image"] for p in get_json(cluster, "pods", "-l", "app=db")["items"]}
    assert images == {"postgres:17"}
    history = cluster.kubectl("rollout", "history", "sts/db").stdout
    assert "1 " in history and "2 " in history
    assert "postgres:16" in cluster.kubectl("rollout", "history", "sts/db", "--revision=1").stdout
    assert "rolled back" in cluster.kubectl("rollout", "undo", "sts/db").stdout
    assert "roll out complete" in rollout_status(cluster, "sts/db")
    images = {p["spec"]["containers"][0]["image"] for p in get_json(cluster, "pods", "-l", "app=db")["items"]}
    assert images == {"postgres:16"}
    sts = get_json(cluster, "sts", "db")
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    revisions = get_json(cluster, "controllerrevisions", "-l", "app=db")["items"]
    assert sorted(r["revision"] for r in revisions) == [2, 3]  # revision 1 was renumbered to 3
    assert "SuccessfulCreate" in cluster.kubectl("describe", "sts", "db").stdout


DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs}
spec:
  selector: {matchLabels: {app: logs}}
  template:
    metadata: {labels: {app: logs}}
    spec: {containers: [{name: c, image: "fluent-bit:1"}]}
"""


def test_daemonset_placement_with_taints(cluster: Cluster, kubelet: FakeKubelet) -> None:  # noqa: F811
    args = ["agent", "--simulate", "2", "--kubeconfig", str(cluster.kubeconfig), "--node-lease-renew-interval", "0.5"]
    agent, _ = start_process(args)
    try:
        wait_for(lambda: len(get_json(cluster, "nodes", "-l", "type=simulated")["items"]) == 2)
        cluster.kubectl("taint", "nodes", "sim-1", "dedicated=gpu:NoSchedule")
        cluster.kubectl("apply", "-f", "-", input=DAEMONSET)

        def placed() -> list[str]:
            pods = get_json(cluster, "pods", "-l", "app=logs")["items"]
            return sorted(p["spec"].get("nodeName", "") for p in pods if not p["metadata"].get("deletionTimestamp"))

        assert "successfully rolled out" in rollout_status(cluster, "ds/logs")
        assert wait_for(lambda: placed() == ["sim-0"])
        ds = get_json(cluster, "ds", "logs")["status"]
        assert ds["desiredNumberScheduled"] == 1 and ds["numberReady"] == 1
        # Tolerating the taint brings a pod to the tainted node too.
        patch = '{"spec":{"template":{"spec":{"tolerations":[{"key":"dedicated","operator":"Exists"}]}}}}'
        cluster.kubectl("patch", "ds", "logs", "-p", patch)
        assert "successfully rolled out" in rollout_status(cluster, "ds/logs")
        assert wait_for(lambda: placed() == ["sim-0", "sim-1"])
        assert get_json(cluster, "ds", "logs")["status"]["updatedNumberScheduled"] == 2
        assert len(get_json(cluster, "controllerrevisions", "-l", "app=logs")["items"]) == 2
    finally:
        stop_process(agent)


def test_restart_keeps_workloads_without_duplicates(tmp_path: Path) -> None:
    first = start_cluster(tmp_path, "sqlite")
    try:
        with KubeletThread(str(first.kubeconfig)):
            first.kubectl("create", "deployment", "kept", "--image=nginx:1", "--replicas=2")
            rollout_status(first, "deploy/kept")
    finally:
        first.stop()
    second = start_cluster(tmp_path, "sqlite")
    try:
        names = sorted(p["metadata"]["name"] for p in get_json(second, "pods", "-l", "app=kept")["items"])
        with KubeletThread(str(second.kubeconfig)):
            second.kubectl("scale", "deploy", "kept", "--replicas=3")
            assert "successfully rolled out" in rollout_status(second, "deploy/kept")
        after = sorted(p["metadata"]["name"] for p in get_json(second, "pods", "-l", "app=kept")["items"])
        assert len(after) == 3 and set(names) <= set(after)  # the old pods were kept, one added
        assert len(get_json(second, "rs", "-l", "app=kept")["items"]) == 1
    finally:
        second.stop()

"""End to end: a real ``sampan server`` process driven by the real kubectl and the
official ``kubernetes`` Python client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cluster import KUBECTL, Cluster, cluster, needs_kubectl, start_cluster, stop_cluster  # noqa: F401

pytestmark = needs_kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: c
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
"""


def test_sqlite_state_survives_restart(tmp_path: Path) -> None:
    first = start_cluster(tmp_path, "sqlite")
    try:
        first.kubectl("create", "configmap", "kept", "--from-literal=a=b")
    finally:
        stop_cluster(first.proc)
    second = start_cluster(tmp_path, "sqlite")
    try:
        data = json.loads(second.kubectl("get", "configmap", "kept", "-o", "json").stdout)
        assert data["data"] == {"a": "b"}
        assert "default" in second.kubectl("get", "serviceaccounts").stdout
    finally:
        stop_cluster(second.proc)


def test_kubeconfig_and_get(cluster: Cluster) -> None:
    assert cluster.kubeconfig.exists()
    out = cluster.kubectl("get", "namespaces").stdout
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert ns in out
    assert "Active" in out
    assert "default" in cluster.kubectl("get", "serviceaccounts", "-n", "kube-system").stdout


def test_create_apply_label_scale_delete(cluster: Cluster, tmp_path: Path) -> None:
    # `create deployment` sends a protobuf body.
    cluster.kubectl("create", "deployment", "web", "--image=nginx")
    table = cluster.kubectl("get", "deploy", "web").stdout
    assert "READY" in table and "UP-TO-DATE" in table and "web" in table
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(DEPLOYMENT)
    assert "created" in cluster.kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26").replace(', {name: B, value: "2"}', ""))
    assert "configured" in cluster.kubectl("apply", "-f", str(manifest)).stdout
    obj = json.loads(cluster.kubectl("get", "deploy", "api", "-o", "json").stdout)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26" and container["env"] == [{"name": "A", "value": "1"}]
    assert obj["metadata"]["generation"] == 2
    cluster.kubectl("label", "deploy", "api", "tier=web")
    assert "tier=web" in cluster.kubectl("get", "deploy", "api", "--show-labels").stdout
    cluster.kubectl("scale", "deploy", "api", "--replicas=5")
    assert cluster.kubectl("get", "deploy", "api", "-o", "jsonpath={.spec.replicas}").stdout == "5"
    assert "(server dry run)" in cluster.kubectl("delete", "deploy", "api", "--dry-run=server").stdout
    cluster.kubectl("delete", "deploy", "api", "web")
    assert "No resources found" in cluster.kubectl("get", "deploy").stderr


def test_server_side_apply_and_conflicting_replace(cluster: Cluster, tmp_path: Path) -> None:
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n")
    assert "serverside-applied" in cluster.kubectl("apply", "--server-side", "-f", str(cm)).stdout
    live = tmp_path / "live.yaml"
    live.write_text(cluster.kubectl("get", "cm", "ssa", "-o", "yaml").stdout)
    cluster.kubectl("replace", "-f", str(live))
    stale = cluster.kubectl("replace", "-f", str(live), check=False)
    assert stale.returncode != 0 and "the object has been modified" in stale.stderr


def test_get_watch(cluster: Cluster) -> None:
    cluster.kubectl("create", "configmap", "watched", "--from-literal=a=b")
    cmd = [
        str(KUBECTL),
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--cache-dir",
        str(cluster.cache),
        "get",
        "configmaps",
        "-w",
        "--request-timeout=8s",
    ]
    watcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    cluster.kubectl("create", "configmap", "later", "--from-literal=x=y")
    time.sleep(1.0)
    watcher.terminate()
    out, _ = watcher.communicate(timeout=10)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert any(line.startswith("watched") for line in lines)
    assert any(line.startswith("later") for line in lines)
    assert sum(1 for line in lines if line.startswith("NAME")) == 1


def test_errors_and_discovery_commands(cluster: Cluster) -> None:
    missing = cluster.kubectl("get", "deploy", "nope", check=False)
    assert 'deployments.apps "nope" not found' in missing.stderr
    no_ns = cluster.kubectl("create", "configmap", "x", "-n", "nowhere", check=False)
    assert 'namespaces "nowhere" not found' in no_ns.stderr
    assert "deployments" in cluster.kubectl("api-resources").stdout
    assert cluster.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert "system:admin" in cluster.kubectl("auth", "whoami").stdout


def test_python_client(cluster: Cluster) -> None:
    pytest.importorskip("kubernetes")
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    core = client.CoreV1Api(api_client)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"k": "v"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid and created.metadata.resource_version
    listed = core.list_namespaced_config_map("default", label_selector="from=python")
    assert [i.metadata.name for i in listed.items] == ["py"]
    core.patch_namespaced_config_map("py", "default", {"data": {"k2": "v2"}})
    assert core.read_namespaced_config_map("py", "default").data == {"k": "v", "k2": "v2"}
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map, "default", label_selector="from=python", timeout_seconds=1
        )
    )
    assert [e["type"] for e in events] == ["ADDED"]
    status = core.delete_namespaced_config_map("py", "default", grace_period_seconds=0, propagation_policy="Background")
    assert status["status"] == "Success" and status["details"]["name"] == "py"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("never", "default")
    assert err.value.status == 404
    apps = client.AppsV1Api(api_client)
    assert apps.list_namespaced_deployment("default").items == []

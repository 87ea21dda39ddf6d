"""Services, endpoints and quotas through the real kubectl against a real server process."""

from __future__ import annotations

import json

from tests.e2e.cluster import Cluster, cluster, needs_kubectl, wait_for  # noqa: F401 (fixture)

pytestmark = needs_kubectl


def play_kubelet(cluster: Cluster, pod: str, ip: str, namespace: str = "default") -> None:
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    cluster.kubectl(
        "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
    )


def test_kubernetes_service_and_endpoints(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "svc", "kubernetes").stdout
    assert "10.43.0.1" in out and "443/TCP" in out and "ClusterIP" in out
    port = cluster.kubeconfig.read_text().split("https://127.0.0.1:")[1].split()[0].strip("\"'")
    assert f"127.0.0.1:{port}" in cluster.kubectl("get", "endpoints", "kubernetes").stdout
    slices = json.loads(cluster.kubectl("get", "endpointslices", "kubernetes", "-o", "json").stdout)
    assert slices["endpoints"][0]["addresses"] == ["127.0.0.1"] and slices["ports"][0]["port"] == int(port)
    uid = json.loads(cluster.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)["metadata"]["uid"]
    cluster.kubectl("delete", "svc", "kubernetes")

    def recreated() -> bool:
        got = cluster.kubectl("get", "svc", "kubernetes", "-o", "json", check=False)
        return got.returncode == 0 and json.loads(got.stdout)["metadata"]["uid"] != uid

    wait_for(recreated)
    assert "10.43.0.1" in cluster.kubectl("get", "svc", "kubernetes").stdout


def test_expose_pod_endpoints_and_slices(cluster: Cluster) -> None:
    cluster.kubectl("run", "web", "--image=nginx", "--port=80", "--labels=app=web")
    cluster.kubectl("expose", "pod", "web", "--port=8080", "--target-port=80", "--name=web")
    svc = json.loads(cluster.kubectl("get", "svc", "web", "-o", "json").stdout)
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("10.43.") and ip != "10.43.0.1" and svc["spec"]["clusterIPs"] == [ip]
    assert "8080/TCP" in cluster.kubectl("get", "svc", "web").stdout
    play_kubelet(cluster, "web", "10.42.0.7")
    wait_for(lambda: "10.42.0.7:80" in cluster.kubectl("get", "endpoints", "web").stdout)
    table = wait_for(
        lambda: (out := cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=web").stdout)
        and "10.42.0.7" in out
        and out
    )
    assert "IPv4" in table and "80" in table


def test_create_service_nodeport_and_conflict(cluster: Cluster) -> None:
    cluster.kubectl("create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080")
    assert "80:30080/TCP" in cluster.kubectl("get", "svc", "np").stdout
    clash = cluster.kubectl("create", "service", "nodeport", "np2", "--tcp=81:8080", "--node-port=30080", check=False)
    assert clash.returncode != 0
    assert 'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated' in clash.stderr
    auto = json.loads(cluster.kubectl("create", "service", "nodeport", "np3", "--tcp=82:8080", "-o", "json").stdout)
    assert 30000 <= auto["spec"]["ports"][0]["nodePort"] <= 32767
    cluster.kubectl("delete", "svc", "np")
    cluster.kubectl("create", "service", "nodeport", "np4", "--tcp=80:8080", "--node-port=30080")  # released


def test_quota_refuses_with_403_and_describe(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "limited")
    cluster.kubectl("create", "quota", "q1", "--hard=pods=1,services=2", "-n", "limited")
    wait_for(lambda: "used" in json.loads(cluster.kubectl("get", "quota", "q1", "-n", "limited", "-o", "json").stdout).get("status", {}))
    cluster.kubectl("run", "p1", "--image=nginx", "-n", "limited")
    refused = cluster.kubectl("run", "p2", "--image=nginx", "-n", "limited", check=False)
    assert refused.returncode != 0
    assert "(Forbidden)" in refused.stderr
    assert 'pods "p2" is forbidden: exceeded quota: q1, requested: pods=1, used: pods=1, limited: pods=1' in refused.stderr
    described = wait_for(
        lambda: (out := cluster.kubectl("describe", "quota", "q1", "-n", "limited").stdout) and "services" in out and out
    )
    lines = {line.split()[0]: line.split()[1:] for line in described.splitlines() if line.startswith(("pods", "services"))}
    assert lines["pods"] == ["1", "1"] and lines["services"] == ["0", "2"]

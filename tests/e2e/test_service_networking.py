"""Service networking on a real node: a ``sampan server`` process whose in-process agent runs
busybox pods with runc on the CNI bridge, plus the node's service proxy, cluster DNS,
NetworkPolicy enforcement and ingress. Everything is reached the way users reach it: a client
pod's wget, curl-like requests from the host, and the real kubectl. Needs root, runc, the CNI
plugins, busybox-static and nft; skipped otherwise."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import KUBECTL, Cluster, start_process
from tests.e2e.test_pods_real import eventually
from tests.node import busybox

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft"),
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(), reason="needs the CNI plugins"),
    pytest.mark.skipif(not busybox.available(), reason="needs busybox-static"),
    pytest.mark.skipif(KUBECTL is None, reason="needs kubectl"),
    pytest.mark.timeout(900),
]

NODE = "e2e-net"
IMAGE = "busybox:e2e"
NS = "netdemo"
# The node's address: one of the test range, added to lo for the test (never a real network).
NODE_IP = "198.18.255.254"
# A part of the test range of its own: the real-pod tests' node gets 198.18.0.0/24 on the same bridge.
CLUSTER_CIDR = "198.18.64.0/18"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def our_tables() -> list[str]:
    """Production tables (``sampan-*`` except the unit tests' ``sampan-test-*``)."""
    out = sh("nft", "list", "tables").stdout.split()
    return [t for t in out if t.startswith("sampan-") and not t.startswith("sampan-test-")]


def http_get(host: str, port: int, host_header: str | None = None, timeout: float = 3.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host_header} if host_header else {})
        reply = conn.getresponse()
        return reply.status, reply.read().decode().strip()
    finally:
        conn.close()


def pod_netns(data: Path) -> list[str]:
    """The netns names of the pods this node's CNI state knows."""
    cni = data / "agent" / "cni"
    return [f"sampan-{f.stem[:12]}" for f in [*cni.glob("*.json"), *cni.glob("pods/*.json")]]


def kill_leftovers(data: Path) -> None:
    """What a failed run left: this data dir's monitors and containers, pod netns, mounts."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(data).encode() in cmd and int(pid) != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    runc_root = "/run/sampan/runc"
    for cid in sh("runc", "--root", runc_root, "list", "-q").stdout.split():
        if (data / "agent" / "runtime" / cid).exists():
            sh("runc", "--root", runc_root, "delete", "--force", cid)
    for name in pod_netns(data):
        sh("ip", "netns", "delete", name)
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        if line.split()[4].startswith(str(data)):
            sh("umount", "-l", line.split()[4])
    attached = sh("ip", "-o", "link", "show", "master", "sampan0")
    if attached.returncode == 0 and not attached.stdout.strip():
        sh("ip", "link", "delete", "sampan0")  # the pods' bridge, now unused


def answer(host: str, port: int) -> str | None:
    """The body of a 200 reply, None while the address does not answer (yet)."""
    try:
        status, body = http_get(host, port)
    except OSError:
        return None
    return body if status == 200 else None


class Net(Cluster):
    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-n", NS, *args, "-o", "json").stdout)

    def wget(self, url: str, timeout: int = 2) -> subprocess.CompletedProcess[str]:
        # busybox's own `wget -T` crashes (Debian's static build): `timeout` bounds it instead
        return self.kubectl("exec", "-n", NS, "client", "--", "busybox", "timeout", str(timeout), "wget", "-qO-", url,
                            check=False)

    def ready_endpoints(self, service: str) -> list[str]:
        slices = self.get("endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]
        return sorted(a for s in slices for e in s.get("endpoints") or []
                      if (e.get("conditions") or {}).get("ready") for a in e["addresses"])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    from tests.node.images_util import busybox_image, write_docker_archive

    data = tmp_path_factory.mktemp("net")
    drop = data / "agent" / "images"
    drop.mkdir(parents=True)
    write_docker_archive(drop / "busybox.tar", busybox_image(cmd=["sh"]), [IMAGE])
    sh("ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo")
    assert sh("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo").returncode == 0
    http_port, https_port = free_port(), free_port()
    try:
        args = ["server", "--data-dir", str(data), "--datastore", "sqlite", "--port", "0", "--node-name", NODE,
                "--runtime", "oci", "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", "198.19.0.0/16",
                "--node-ip", NODE_IP, "--ingress-http-port", str(http_port), "--ingress-https-port", str(https_port)]
        proc, output = start_process(args, timeout=120)
        cluster = Net(data, proc, output)
        cluster.http_port = http_port  # type: ignore[attr-defined]
        try:
            eventually(lambda: "Ready" in cluster.kubectl("get", "node", NODE).stdout, 60)
            cluster.kubectl("create", "namespace", NS)
            yield cluster
        finally:
            if proc.poll() is None:
                cluster.kubectl("delete", "namespace", NS, "--wait=true", check=False, timeout=180)
                proc.terminate()  # the server's stop removes the node's nft tables and route
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            kill_leftovers(data)
    finally:
        sh("ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo")
        for table in our_tables():  # only if the server died before it could clean up
            family = "inet" if table.endswith("netpol") else "ip"
            sh("nft", "delete", "table", family, table)


def deployment(name: str, replicas: int, prefix: str) -> dict[str, Any]:
    script = f"mkdir -p /www && echo {prefix}$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "httpd", "image": IMAGE, "command": ["sh", "-c", script],
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}},
    }


def service(name: str, app: str, port: int, type_: str = "ClusterIP") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"type": type_, "selector": {"app": app},
                     "ports": [{"name": "http", "port": port, "targetPort": 8080}]}}


def policy(name: str, ingress: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": NS},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"], "ingress": ingress}}


@pytest.fixture(scope="module")
def web(net: Net) -> Net:
    net.apply(deployment("web", 3, ""))
    net.apply(deployment("other", 1, "other-"))
    net.apply(service("web", "web", 80))
    net.apply(service("other", "other", 80))
    net.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS,
                                                              "labels": {"role": "client"}},
               "spec": {"terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "100000"]}]}})
    eventually(lambda: len(net.ready_endpoints("web")) == 3 and len(net.ready_endpoints("other")) == 1, 180)
    eventually(lambda: net.get("pod", "client")["status"].get("phase") == "Running", 120)
    return net


def web_pods(net: Net) -> set[str]:
    return {p["metadata"]["name"] for p in net.get("pods", "-l", "app=web")["items"]}


def collect(net: Net, url: str, want: set[str], tries: int = 60) -> set[str]:
    """Asks ``url`` from the client pod until every backend in ``want`` answered (bounded)."""
    seen: set[str] = set()
    for _ in range(tries):
        got = net.wget(url)
        if got.returncode == 0:
            seen.add(got.stdout.strip())
        if want <= seen:
            return seen
    raise AssertionError(f"{url}: saw {sorted(seen)} of {sorted(want)}; last: {got.returncode} {got.stderr.strip()}")


def test_cluster_ip_and_dns_reach_every_backend(web: Net) -> None:
    pods = web_pods(web)
    assert len(pods) == 3
    ip = web.get("service", "web")["spec"]["clusterIP"]
    assert ip.startswith("198.19.")
    assert collect(web, f"http://{ip}/", pods) == pods
    resolv = web.kubectl("exec", "-n", NS, "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 198.19.0.10" in resolv and f"search {NS}.svc.cluster.local" in resolv
    assert collect(web, f"http://web.{NS}.svc.cluster.local/", pods) == pods
    assert collect(web, "http://web/", pods) == pods
    looked_up = web.kubectl("exec", "-n", NS, "client", "--", "busybox", "nslookup", f"web.{NS}.svc.cluster.local")
    assert ip in looked_up.stdout


def test_node_port_from_the_host(web: Net) -> None:
    web.apply(service("web-np", "web", 8090, "NodePort"))
    port = web.get("service", "web-np")["spec"]["ports"][0]["nodePort"]
    pods = web_pods(web)
    for host in ("127.0.0.1", NODE_IP):
        assert eventually(lambda h=host: answer(h, port), 30) in pods  # type: ignore[misc]


def test_load_balancer_status_address(web: Net) -> None:
    web.apply(service("web-lb", "web", 8091, "LoadBalancer"))

    def lb_ip() -> str | None:
        ingress = (web.get("service", "web-lb")["status"].get("loadBalancer") or {}).get("ingress") or []
        return ingress[0]["ip"] if ingress else None

    ip = eventually(lb_ip, 60)
    assert ip == NODE_IP
    assert eventually(lambda: answer(ip, 8091), 30) in web_pods(web)


def test_ingress_routes_hosts(web: Net) -> None:
    port = web.http_port  # type: ignore[attr-defined]
    rule = lambda host, svc: {"host": host, "http": {"paths": [{  # noqa: E731
        "path": "/", "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}
    web.apply({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "two", "namespace": NS},
               "spec": {"rules": [rule("web.example.test", "web"), rule("other.example.test", "other")]}})

    def routed(host: str, check: Any) -> bool:
        try:
            status, body = http_get("127.0.0.1", port, host)
        except OSError:
            return False
        return status == 200 and bool(check(body))

    eventually(lambda: routed("web.example.test", lambda b: b in web_pods(web)), 60)
    eventually(lambda: routed("other.example.test", lambda b: b.startswith("other-")), 30)
    assert not routed("nobody.example.test", bool)  # no rule, no default backend: 404
    lb = (web.get("ingress", "two")["status"].get("loadBalancer") or {}).get("ingress") or []
    assert {"ip": NODE_IP} in lb


def test_network_policy_blocks_then_allows(web: Net) -> None:
    ip = web.get("service", "web")["spec"]["clusterIP"]
    assert web.wget(f"http://{ip}/").returncode == 0
    web.apply(policy("deny-all", []))
    eventually(lambda: web.wget(f"http://{ip}/").returncode != 0, 30)
    # Blocked for good: several tries (different backends) all fail.
    assert all(web.wget(f"http://{ip}/", timeout=1).returncode != 0 for _ in range(3))
    web.apply(policy("allow-client", [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]))
    eventually(lambda: web.wget(f"http://{ip}/").returncode == 0, 30)
    pods = web_pods(web)
    assert collect(web, f"http://{ip}/", pods) == pods
    web.kubectl("delete", "networkpolicy", "-n", NS, "deny-all", "allow-client")


def test_no_ready_endpoints_rejects(web: Net) -> None:
    ip = web.get("service", "web")["spec"]["clusterIP"]
    web.kubectl("scale", "deployment", "-n", NS, "web", "--replicas=0")
    eventually(lambda: not web.ready_endpoints("web"), 90)

    def refused() -> bool:
        got = web.wget(f"http://{ip}/")
        return got.returncode != 0 and "refused" in (got.stderr + got.stdout).lower()

    eventually(refused, 30)
    port = web.get("service", "web-np")["spec"]["ports"][0]["nodePort"]
    with pytest.raises(ConnectionRefusedError):
        http_get("127.0.0.1", port)


def test_stop_removes_tables_and_netns(tmp_path: Path, web: Net) -> None:
    """Runs last: stops the server and checks what it left behind."""
    netns = pod_netns(web.data_dir)
    assert len(netns) >= 2  # other and client (web was scaled to zero)
    web.kubectl("delete", "namespace", NS, "--wait=true", timeout=180)
    assert set(our_tables()) >= {"sampan-proxy", "sampan-netpol"}
    web.proc.terminate()
    web.proc.wait(60)
    assert web.proc.returncode == 0, "".join(web.output[-30:])
    assert not [t for t in our_tables() if t in ("sampan-proxy", "sampan-netpol")]
    assert "198.19.0.0/16" not in sh("ip", "route", "show", "table", "local").stdout
    names = set(sh("ip", "netns", "list").stdout.split())
    assert not set(netns) & names  # the agent tore every pod network down before the server stopped

"""NetworkPolicy enforcement for real: a netns plays the node (bridge + nft table), pod netns
hang off the bridge on veth pairs, busybox httpd serves and busybox wget probes, while the
Pods, Namespaces and NetworkPolicies live in an in-process API server."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sampan.client.http import HttpClient
from sampan.client.interface import NAMESPACES, PODS
from sampan.proxy.netpol import NETWORKPOLICIES, NetworkPolicyController
from sampan.server import ServerOptions, start_server
from tests.harness import eventually as shared_eventually
from tests.node import busybox

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not busybox.available() or not all(shutil.which(t) for t in ("ip", "nft", "timeout")),
    reason="needs root, ip, nft, timeout and busybox-static",
)

NODE = "netpol-node"
SUBNET = "198.18.77"
WEB_IP, CLIENT_A_IP, CLIENT_B_IP = f"{SUBNET}.10", f"{SUBNET}.11", f"{SUBNET}.12"


async def run(*argv: str, check: bool = True) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if check and proc.returncode:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {out.decode()}")
    return proc.returncode or 0, out.decode()


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0) -> None:
    # Real packets through real namespaces: poll slower and wait longer than the default.
    await shared_eventually(check, timeout, interval=0.1)


@dataclass
class Net:
    suffix: str
    node: str
    pods: dict[str, str] = field(default_factory=dict)  # pod name -> netns
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def add_pod(self, name: str, ip: str) -> str:
        ns = f"spnp-{self.suffix}-{name}"
        await run("ip", "netns", "add", ns)
        self.pods[name] = ns
        veth = f"np{self.suffix}{len(self.pods)}"
        await run("ip", "link", "add", veth, "netns", self.node, "type", "veth", "peer", "name", "eth0", "netns", ns)
        await run("ip", "-n", self.node, "link", "set", veth, "master", "br0", "up")
        await run("ip", "-n", ns, "link", "set", "lo", "up")
        await run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        await run("ip", "-n", ns, "link", "set", "eth0", "up")
        return ns

    async def fetch(self, from_ns: str, ip: str = WEB_IP) -> bool:
        # busybox wget -T crashes in Debian's build: coreutils timeout bounds the attempt.
        code, out = await run("ip", "netns", "exec", from_ns, "timeout", "3", "/bin/busybox", "wget", "-q", "-O", "-",
                              f"http://{ip}/", check=False)
        return code == 0 and "hello" in out


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    suffix = secrets.token_hex(3)
    node = f"spnp-{suffix}-node"
    n = Net(suffix, node)
    try:
        await run("ip", "netns", "add", node)
        await run("ip", "-n", node, "link", "add", "br0", "type", "bridge")
        await run("ip", "-n", node, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        await run("ip", "-n", node, "link", "set", "br0", "up")
        web = await n.add_pod("web", WEB_IP)
        await n.add_pod("client-a", CLIENT_A_IP)
        await n.add_pod("client-b", CLIENT_B_IP)
        www = tmp_path / "www"
        www.mkdir()
        (www / "index.html").write_text("hello\n")
        n.procs.append(subprocess.Popen(["ip", "netns", "exec", web, "/bin/busybox", "httpd", "-f", "-p", "80",
                                         "-h", str(www)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield n
    finally:
        # Plain blocking calls: teardown must finish even if the event loop is being cancelled.
        for proc in n.procs:
            proc.kill()
            proc.wait()
        for ns in [*n.pods.values(), node]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def pod_obj(name: str, ns: str, labels: dict[str, str], ports: list[dict[str, Any]] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox", "ports": ports or []}]}}


def netpol(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "np"}, "spec": spec}


@dataclass
class Cluster:
    client: HttpClient
    controller: NetworkPolicyController
    table: str

    async def apply(self, name: str, spec: dict) -> None:
        await self.client.create(NETWORKPOLICIES, netpol(name, spec), namespace="np")

    async def agrees(self, net: Net, src: str, src_ip: str) -> bool:
        """The kernel's verdict, checked against the plan's own decision for the same flow."""
        got = await net.fetch(src)
        plan = self.controller.plan
        assert plan is not None and plan.allows(src_ip, WEB_IP, "tcp", 80) == got
        return got


@pytest.fixture
async def cluster(net: Net, tmp_path: Path) -> AsyncIterator[Cluster]:
    """API server with namespaces np/other and pods web, client-a (np), client-b (other)."""
    server = await start_server(ServerOptions(data_dir=tmp_path / "srv", port=0, datastore="memory",
                                              controllers=[], scheduler=False))
    client = HttpClient.from_kubeconfig(server.kubeconfig)
    table = f"sampan-test-{net.suffix}"
    controller = NetworkPolicyController(client, NODE, table=table, netns=net.node, debounce=0.05)
    try:
        for ns, team in (("np", "np"), ("other", "other")):
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": ns, "labels": {"team": team}}})
        pods = [("web", "np", {"app": "web"}, WEB_IP, [{"name": "http", "containerPort": 80}]),
                ("client-a", "np", {"role": "client"}, CLIENT_A_IP, None),
                ("client-b", "other", {"role": "client"}, CLIENT_B_IP, None)]
        for name, ns, labels, ip, ports in pods:
            await client.create(PODS, pod_obj(name, ns, labels, ports), namespace=ns)
            await client.patch(PODS, name, {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}},
                               "merge", namespace=ns, subresource="status")
        await controller.start()
        await asyncio.wait_for(controller.synced.wait(), 30)
        await eventually(lambda: net.fetch(net.pods["client-a"]))  # nothing selects web yet (and httpd is up)
        yield Cluster(client, controller, table)
    finally:
        await controller.stop()
        await client.close()
        await server.stop()
    code, _ = await run("ip", "netns", "exec", net.node, "nft", "list", "table", "inet", table, check=False)
    assert code != 0  # stop() removed the table


async def test_policies_block_then_allow_traffic(net: Net, cluster: Cluster) -> None:
    a, b = net.pods["client-a"], net.pods["client-b"]
    assert await cluster.agrees(net, b, CLIENT_B_IP)

    await cluster.apply("deny", {"podSelector": {"matchLabels": {"app": "web"}}})
    await eventually(lambda: _not(net.fetch(a)))
    assert not await cluster.agrees(net, b, CLIENT_B_IP)
    assert await net.fetch(net.node)  # the node itself (kubelet probes) still gets through
    code, _ = await run("nft", "list", "table", "inet", cluster.table, check=False)
    assert code != 0  # the host's ruleset is untouched: the table lives in the node netns

    # Same-namespace clients on the named port: client-a in, client-b (other namespace) still out.
    await cluster.apply("allow-clients", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": "http"}]}],
    })
    await eventually(lambda: net.fetch(a))
    assert not await cluster.agrees(net, b, CLIENT_B_IP)

    # A namespaceSelector AND podSelector peer lets client-b in too.
    await cluster.apply("allow-other", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "other"}},
                               "podSelector": {"matchLabels": {"role": "client"}}}]}],
    })
    await eventually(lambda: net.fetch(b))

    # Egress isolation of client-a with nothing allowed: its connections stop.
    await cluster.apply("a-egress", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]})
    await eventually(lambda: _not(net.fetch(a)))
    assert await cluster.agrees(net, b, CLIENT_B_IP)

    for name in ("deny", "allow-clients", "allow-other", "a-egress"):
        await cluster.client.delete(NETWORKPOLICIES, name, namespace="np")
    await eventually(lambda: net.fetch(a))
    assert await cluster.agrees(net, b, CLIENT_B_IP)
    assert cluster.controller.plan is not None and cluster.controller.plan.ingress == {}


async def test_ip_block_except_port_ranges_and_egress_named_ports(net: Net, cluster: Cluster) -> None:
    a, b = net.pods["client-a"], net.pods["client-b"]
    # The whole test subnet except client-b, on a port range that covers 80.
    await cluster.apply("block", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": f"{SUBNET}.0/24", "except": [f"{CLIENT_B_IP}/32"]}}],
                     "ports": [{"protocol": "TCP", "port": 70, "endPort": 90}]}],
    })
    await eventually(lambda: _not(net.fetch(b)))
    assert await cluster.agrees(net, a, CLIENT_A_IP)

    # Narrow the range below 80: client-a is out as well.
    await cluster.client.patch(NETWORKPOLICIES, "block", {"spec": {"ingress": [{
        "from": [{"ipBlock": {"cidr": f"{SUBNET}.0/24", "except": [f"{CLIENT_B_IP}/32"]}}],
        "ports": [{"protocol": "TCP", "port": 70, "endPort": 79}]}]}}, "merge", namespace="np")
    await eventually(lambda: _not(net.fetch(a)))
    await cluster.client.delete(NETWORKPOLICIES, "block", namespace="np")
    await eventually(lambda: net.fetch(a))

    # Egress by named port: resolved against the destination pod (web's "http" = 80).
    await cluster.apply("egress-named", {
        "podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": "http"}]}],
    })
    await eventually(lambda: cluster.controller.plan is not None and CLIENT_A_IP in cluster.controller.plan.egress)
    assert await cluster.agrees(net, a, CLIENT_A_IP)
    await cluster.client.patch(NETWORKPOLICIES, "egress-named", {"spec": {"egress": [{"ports": [{"port": "dns"}]}]}},
                               "merge", namespace="np")
    await eventually(lambda: _not(net.fetch(a)))
    assert not await cluster.agrees(net, a, CLIENT_A_IP)


async def _not(check: Awaitable[bool]) -> bool:
    return not await check

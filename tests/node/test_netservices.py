"""The node's network services next to a real in-process server: a missing part (here: nft)
is reported as a Node event and the rest still runs; DNS answers and the kube-dns Service
points at it; ingress serves on its ports; stop() releases them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import pytest

from sampan.client.interface import ENDPOINTSLICES, EVENTS, SERVICES
from sampan.client.local import LocalClient
from sampan.node import netservices
from sampan.node.netservices import NodeNetworkServices, pod_gateway, resolv_conf_for
from sampan.server import RunningServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def http_status(port: int) -> int | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    writer.write(b"GET / HTTP/1.0\r\nHost: nobody.test\r\n\r\n")
    line = await reader.readline()
    writer.close()
    return int(line.split()[1]) if line else None


async def until(check: Any, timeout: float = 20.0) -> Any:
    for _ in range(int(timeout / 0.1)):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met")


async def test_missing_nft_is_reported_and_the_rest_runs(server: RunningServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netservices.shutil, "which", lambda name: None)  # a machine without nft
    client = LocalClient(server.registry)
    http_port = free_port()
    net = NodeNetworkServices(client, "n1", "127.0.0.1", "198.18.0.0/16", "198.19.0.0/16", tmp_path / "node",
                              ingress=True, ingress_http_port=http_port, ingress_https_port=free_port(),
                              ingress_bind="127.0.0.1", dns_port=0, pod_cidr_timeout=0.3)
    await net.start()
    try:
        await asyncio.wait_for(net.started.wait(), 60)
        assert set(net.errors) == {"proxy", "netpol"} and net.proxier is None and net.netpol is None
        assert "nft" in net.errors["proxy"]

        # DNS: no podCIDR for this node, so it listens on the node address.
        assert net.dns is not None and net.dns.listen_ip == "127.0.0.1"
        reply = await dns.asyncquery.udp(dns.message.make_query("kubernetes.default.svc.cluster.local", "A"),
                                         "127.0.0.1", port=net.dns.port, timeout=5)
        assert [r.address for r in reply.answer[0]] == ["198.19.0.1"]
        svc = await client.get(SERVICES, "kube-dns", "kube-system")
        assert svc["spec"]["clusterIP"] == net.dns_ip == "198.19.0.10"
        eps = await client.get(ENDPOINTSLICES, "kube-dns", "kube-system")
        assert eps["endpoints"][0]["addresses"] == ["127.0.0.1"]
        assert {p["port"] for p in eps["ports"]} >= {net.dns.port}

        assert await until(lambda: http_status(http_port)) == 404  # no Ingress for that host

        async def warned() -> list[dict[str, Any]]:
            items = (await client.list(EVENTS, "default"))["items"]
            return [e for e in items if e["reason"] == "NetworkServiceFailed"]

        events = await until(warned)
        assert all(e["type"] == "Warning" and e["involvedObject"]["kind"] == "Node" for e in events)
        assert events[0]["involvedObject"]["name"] == "n1"
    finally:
        await net.stop()
    assert await http_status(http_port) is None  # ingress stopped (nginx or the in-process proxy)


async def test_disabled_parts_do_not_start(server: RunningServer, tmp_path: Path) -> None:
    client = LocalClient(server.registry)
    net = NodeNetworkServices(client, "n2", "127.0.0.1", "198.18.0.0/16", "198.19.0.0/16", tmp_path,
                              ingress=True, disabled=["ingress", "coredns", "kube-proxy", "network-policy"])
    await net.start()
    await asyncio.wait_for(net.started.wait(), 10)
    assert (net.proxier, net.netpol, net.dns, net.ingress, net.errors) == (None, None, None, None, {})
    assert net.dns_ip is None  # pods keep the host's resolv.conf
    await net.stop()


def test_pod_resolv_conf_and_gateway() -> None:
    pod = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {}}
    text = resolv_conf_for(pod, "198.19.0.10")
    assert "nameserver 198.19.0.10" in text
    assert text.startswith("search shop.svc.cluster.local svc.cluster.local cluster.local")
    assert "options ndots:5" in text
    custom = {"metadata": {"name": "p"}, "spec": {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["198.18.0.9"]}}}
    assert resolv_conf_for(custom, "198.19.0.10") == "nameserver 198.18.0.9\n"
    assert pod_gateway("198.18.3.0/24") == "198.18.3.1"


async def test_dns_port_taken_is_reported(server: RunningServer, tmp_path: Path) -> None:
    client = LocalClient(server.registry)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        net = NodeNetworkServices(client, "n3", "127.0.0.1", "198.18.0.0/16", "198.19.0.0/16", tmp_path,
                                  disabled=["kube-proxy", "network-policy"], dns_port=taken.getsockname()[1],
                                  pod_cidr_timeout=0.1)
        await net.start()
        await asyncio.wait_for(net.started.wait(), 30)
        assert net.dns is None and "dns did not start" in net.errors["dns"]
        await net.stop()

"""busybox nslookup in a network namespace resolves cluster names through the DNS server
listening on the host end of a veth pair (198.18.0.0/16), with the pod's resolv.conf."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sampan.client.interface import ENDPOINTSLICES, SERVICES
from sampan.client.local import LocalClient
from sampan.proxy.dns import ClusterDNS, pod_resolv_conf
from tests.harness import memory_registry
from tests.node import busybox
from tests.proxy.dns_fixtures import FakeUpstream, ep, eps, svc

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or not busybox.available(),
    reason="needs root, iproute2 and busybox-static",
)


async def run(*cmd: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {text}")
    return text


@pytest.fixture
async def netns() -> AsyncIterator[tuple[str, str]]:
    """(namespace name, host-side address); the pod side is the next address."""
    tag = secrets.token_hex(3)
    name, host_if, pod_if = f"sampan-test-dns-{tag}", f"sdh{tag}", f"sdp{tag}"
    base = f"198.18.{random.randint(200, 250)}.{random.randrange(0, 252, 4)}"
    prefix = base.rsplit(".", 1)[0]
    last = int(base.rsplit(".", 1)[1])
    host_ip, pod_ip = f"{prefix}.{last + 1}", f"{prefix}.{last + 2}"
    try:
        await run("ip", "netns", "add", name)
        await run("ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if, "netns", name)
        await run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        await run("ip", "link", "set", host_if, "up")
        await run("ip", "-n", name, "addr", "add", f"{pod_ip}/30", "dev", pod_if)
        await run("ip", "-n", name, "link", "set", pod_if, "up")
        await run("ip", "-n", name, "link", "set", "lo", "up")
        yield name, host_ip
    finally:
        await run("ip", "link", "del", host_if, check=False)
        await run("ip", "netns", "del", name, check=False)
        shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)


async def test_nslookup_in_netns(netns: tuple[str, str]) -> None:
    name, host_ip = netns
    upstream = FakeUpstream({"example.com": "198.18.200.1"})
    await upstream.start()
    server: ClusterDNS | None = None
    async with memory_registry(service_cidr="198.19.0.0/16") as reg:
        try:
            client = LocalClient(reg, field_manager="test")
            await client.create(SERVICES, svc("web", cluster_ip="198.19.0.20"), "default")
            await client.create(SERVICES, svc("db", cluster_ip="None"), "default")
            await client.create(ENDPOINTSLICES, eps("db", [ep("198.18.0.7", hostname="db-0")]), "default")
            server = ClusterDNS(client, host_ip, port=53, upstreams=[(upstream.host, upstream.port)])
            await server.start()
            # ip netns exec bind-mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf
            conf = pod_resolv_conf({"metadata": {"namespace": "default"}, "spec": {}}, host_ip, "cluster.local", "")
            (Path("/etc/netns") / name).mkdir(parents=True, exist_ok=True)
            (Path("/etc/netns") / name / "resolv.conf").write_text(conf)

            out = await run("ip", "netns", "exec", name, "/bin/busybox", "nslookup", "web.default.svc.cluster.local", host_ip)
            assert "198.19.0.20" in out
            out = await run("ip", "netns", "exec", name, "/bin/busybox", "nslookup", "db-0.db.default.svc.cluster.local")
            assert "198.18.0.7" in out
            # a short name through the search list of the pod's resolv.conf
            # (busybox asks every search domain and exits 1 when some answer NXDOMAIN)
            out = await run("ip", "netns", "exec", name, "/bin/busybox", "nslookup", "web", check=False)
            assert "web.default.svc.cluster.local\nAddress: 198.19.0.20" in out
            out = await run("ip", "netns", "exec", name, "/bin/busybox", "nslookup", "198.19.0.20")
            assert "web.default.svc.cluster.local" in out
            out = await run("ip", "netns", "exec", name, "/bin/busybox", "nslookup", "example.com")
            assert "198.18.200.1" in out
            out = await run("ip", "netns", "exec", name, "/bin/busybox", "nslookup", "nope.default.svc.cluster.local", check=False)
            assert "NXDOMAIN" in out
        finally:
            if server is not None:
                await server.stop()
            await upstream.stop()

"""Pod networks through Debian's real CNI plugins, in network namespaces the tests create.

Each test gets its own bridge, a /24 inside 198.18.0.0/16 and its own host-local store, and
puts the host back as it found it: netns, bridge, its masquerade table, iptables rules and
chains (and the nft tables iptables-nft made for them), ip_forward.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sampan.node.cni import CNIError, PodNetwork, masq_chain, normalise_port_mappings
from tests.node import busybox

PLUGINS = Path("/usr/lib/cni")
HOSTPORT_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")
IPTABLES_NFT_TABLES = {"ip nat", "ip6 nat", "ip filter", "ip6 filter"}
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

needs_host = pytest.mark.skipif(
    os.geteuid() != 0
    or not all((PLUGINS / p).is_file() for p in ("loopback", "bridge", "host-local", "portmap"))
    or not all(shutil.which(t) for t in ("ip", "iptables", "iptables-save", "nft"))
    or not busybox.available(),
    reason="needs root, containernetworking-plugins, iproute2, iptables, nftables and busybox-static",
)


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout


def nat_rules() -> list[str]:
    return sh("iptables-save", "-t", "nat", check=False).splitlines()


def nft_tables() -> set[str]:
    return {line.removeprefix("table ").strip() for line in sh("nft", "list", "tables", check=False).splitlines()}


# -- unit tests (no root) ---------------------------------------------------------------
def test_port_mappings_from_container_ports() -> None:
    got = normalise_port_mappings([
        {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
        {"containerPort": 9090},  # no hostPort: not published
    ])
    assert got == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                   {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]


def test_masq_chain_name_matches_the_plugin() -> None:
    # The name the bridge plugin gave network "sptry0", container "aaaaaaaa-...": our fallback
    # teardown deletes this exact chain.
    assert masq_chain("sptry0", "aaaaaaaa-1111-2222-3333-444444444444") == "CNI-fe16a88425e1379bf03ffff6"


def test_configs_follow_the_spec(tmp_path: Path) -> None:
    net = PodNetwork("198.18.7.0/24", tmp_path, bridge="spt0")
    conf = net.bridge_conf()
    # Masquerading is one node-wide nft rule, not the plugin's per-pod iptables chains.
    assert conf["cniVersion"] == "1.0.0" and conf["isGateway"] and not conf["ipMasq"] and conf["hairpinMode"]
    assert PodNetwork("198.18.7.0/24", tmp_path, bridge="spt0", nat_table=None).bridge_conf()["ipMasq"]
    assert conf["ipam"]["ranges"] == [[{"subnet": "198.18.7.0/24", "gateway": "198.18.7.1"}]]
    assert conf["ipam"]["dataDir"] == str(tmp_path / "host-local")
    pm = net.portmap_conf([{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}])
    assert pm["capabilities"] == {"portMappings": True}
    assert pm["runtimeConfig"]["portMappings"][0]["hostPort"] == 1
    assert net.netns_path("0123456789abcdef") == "/run/netns/sampan-0123456789ab"


def test_masquerade_rule_spares_the_cluster(tmp_path: Path) -> None:
    net = PodNetwork("198.18.7.0/24", tmp_path, cluster_cidr="198.18.0.0/16", nat_table="sampan-test-x")
    rules = net.masquerade_ruleset()
    assert rules.startswith("table ip sampan-test-x {}\ndelete table ip sampan-test-x\n")  # atomic replace
    assert "type nat hook postrouting priority srcnat" in rules
    assert "ip saddr 198.18.7.0/24 ip daddr != { 198.18.0.0/16, 224.0.0.0/4 } masquerade" in rules
    # Without a cluster CIDR only the node's pods are spared, like the bridge plugin's ipMasq.
    alone = PodNetwork("198.18.7.0/24", tmp_path, nat_table="sampan-test-x").masquerade_ruleset()
    assert "daddr != { 198.18.7.0/24, 224.0.0.0/4 }" in alone


# -- host fixtures ------------------------------------------------------------------------
@pytest.fixture
def host_guard() -> Iterator[None]:
    """Puts back what the plugins change on the host besides per-pod state: portmap's shared
    chains, the nft tables iptables-nft creates for them, and ip_forward."""
    forward = IP_FORWARD.read_text().strip()
    chains_before = {c for c in HOSTPORT_CHAINS if any(line.startswith(f":{c} ") for line in nat_rules())}
    tables_before = nft_tables()
    yield
    rules = nat_rules()
    in_use = any(line.startswith(":CNI-DN-") for line in rules)  # another pod's hostPorts still need them
    if not in_use:
        for line in rules:
            if line.startswith("-A ") and any(f"-j {c}" in line for c in HOSTPORT_CHAINS if c not in chains_before):
                subprocess.run(["iptables", "-t", "nat", "-D", *shlex.split(line[3:])], capture_output=True)
        for chain in HOSTPORT_CHAINS:
            if chain not in chains_before:
                subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True)
                subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)
    for table in (nft_tables() - tables_before) & IPTABLES_NFT_TABLES:
        listing = json.loads(sh("nft", "-j", "list", "table", *table.split(), check=False) or "{}")
        if not any("rule" in item for item in listing.get("nftables", [])):
            # Only empty base chains left: the table existed for our rules alone.
            subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True)
    IP_FORWARD.write_text(forward)


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bridge = "spt" + uuid.uuid4().hex[:8]
        self.cidr = f"198.18.{random.randint(100, 254)}.0/24"
        self.nat_table = "sampan-test-" + uuid.uuid4().hex[:8]
        self.uids: list[str] = []
        self.procs: list[asyncio.subprocess.Process] = []
        self.netns: list[str] = []
        self.links: list[str] = []

    def network(self, per_pod_masq: bool = False) -> PodNetwork:
        """A PodNetwork as the agent would make it (a new one = an agent restart);
        ``per_pod_masq``: as earlier agents made it (the bridge plugin's ipMasq)."""
        return PodNetwork(self.cidr, self.root / "cni", bridge=self.bridge,
                          nat_table=None if per_pod_masq else self.nat_table)

    def uid(self) -> str:
        uid = str(uuid.uuid4())
        self.uids.append(uid)
        return uid

    async def cleanup(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        net = self.network()
        for uid in self.uids:
            try:
                await net.teardown(uid)
            except Exception:
                pass
            subprocess.run(["ip", "netns", "delete", PodNetwork.netns_name(uid)], capture_output=True)
        for name in self.netns:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        for link in self.links:
            subprocess.run(["ip", "link", "delete", link], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", self.nat_table], capture_output=True)


@pytest.fixture
async def harness(host_guard: None, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        await h.cleanup()
    assert not [line for line in nat_rules() if any(uid in line for uid in h.uids)], "iptables rules left"
    assert h.bridge not in sh("ip", "-o", "link")
    assert f"ip {h.nat_table}" not in nft_tables()


async def in_netns(netns: str, *argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def ping(netns: str, ip: str) -> bool:
    code, _ = await in_netns(netns, "/bin/busybox", "ping", "-c", "1", "-W", "2", ip)
    return code == 0


def allocations(h: Harness) -> list[str]:
    store = h.root / "cni" / "host-local" / h.bridge
    return sorted(p.name for p in store.iterdir() if p.name[0].isdigit()) if store.is_dir() else []


def bridge_ports(h: Harness) -> list[str]:
    return sh("ip", "-o", "link", "show", "master", h.bridge, check=False).splitlines()


# -- tests on the host ---------------------------------------------------------------------
@needs_host
async def test_two_pods_reach_each_other_and_the_gateway(harness: Harness) -> None:
    net = harness.network()
    a, b = harness.uid(), harness.uid()
    info_a = await net.setup(a, "default", "a", [])
    info_b = await net.setup(b, "default", "b", [])
    assert info_a.netns_path == f"/run/netns/sampan-{a[:12]}" and Path(info_a.netns_path).exists()
    assert info_a.ip != info_b.ip
    assert info_a.gateway == info_b.gateway == harness.cidr.replace(".0/24", ".1")
    assert {info_a.ip.rsplit(".", 1)[0], info_b.ip.rsplit(".", 1)[0]} == {harness.cidr.rsplit(".", 1)[0]}

    ns_a, ns_b = PodNetwork.netns_name(a), PodNetwork.netns_name(b)
    _, lo = await in_netns(ns_a, "ip", "-o", "link", "show", "lo")
    assert ",UP," in lo or "<LOOPBACK,UP" in lo
    _, addrs = await in_netns(ns_a, "ip", "-o", "-4", "addr", "show", "eth0")
    assert f"inet {info_a.ip}/24" in addrs
    assert await ping(ns_a, info_b.ip) and await ping(ns_b, info_a.ip)
    assert await ping(ns_a, info_a.gateway) and await ping(ns_a, "127.0.0.1")
    await net.check(a)
    # Setting up a pod again returns what it already has.
    assert await net.setup(a, "default", "a", []) == info_a
    assert len(bridge_ports(harness)) == 2


@needs_host
async def test_pods_reach_outside_through_the_node_wide_masquerade(harness: Harness) -> None:
    """An "outside" host in a netns of its own, reachable from the node over a veth pair but with
    no route back to the pod CIDR: a pod's ping only comes back when it was masqueraded."""
    net = harness.network()
    a, b = harness.uid(), harness.uid()
    info_a = await net.setup(a, "default", "a", [])
    info_b = await net.setup(b, "default", "b", [])
    assert f"ip {harness.nat_table}" in nft_tables()
    assert not any(a in line or b in line for line in nat_rules())  # no per-pod iptables chains
    third = int(harness.cidr.split(".")[2])
    outside_net = f"198.19.{third}"  # a test address outside the pods' cluster CIDR
    ns, host_end, far_end = f"spt-out-{a[:6]}", f"spo{a[:8]}", f"spi{a[:8]}"
    harness.netns.append(ns)
    harness.links.append(host_end)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", far_end)
    sh("ip", "link", "set", far_end, "netns", ns)
    sh("ip", "addr", "add", f"{outside_net}.1/30", "dev", host_end)
    sh("ip", "link", "set", host_end, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{outside_net}.2/30", "dev", far_end)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", far_end, "up")
    assert await ping(PodNetwork.netns_name(a), f"{outside_net}.2")
    # Pod to pod is not masqueraded: the rule spares the cluster CIDR.
    listing = sh("nft", "list", "table", "ip", harness.nat_table)
    assert f"ip saddr {harness.cidr} ip daddr != {{ {harness.cidr}, 224.0.0.0/4 }} masquerade" in listing
    assert await ping(PodNetwork.netns_name(a), info_b.ip)

    await net.teardown(a)
    assert f"ip {harness.nat_table}" in nft_tables()  # pod b still needs it
    await net.teardown(b)
    assert f"ip {harness.nat_table}" not in nft_tables()  # the node's last pod network went
    assert info_a.ip != info_b.ip


@needs_host
async def test_host_port_reaches_the_pod(harness: Harness, tmp_path: Path) -> None:
    net = harness.network()
    uid = harness.uid()
    host_port = random.randint(20000, 29999)
    info = await net.setup(uid, "default", "web", [{"containerPort": 8080, "hostPort": host_port, "protocol": "TCP"}])
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(f"hello from {uid}\n")
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", PodNetwork.netns_name(uid), "/bin/busybox", "httpd", "-f", "-p", "8080", "-h", str(www),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    harness.procs.append(proc)

    async def fetch(host: str) -> str:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection(host, host_port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.write(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
            await writer.drain()
            body = (await asyncio.wait_for(reader.read(), 10)).decode()
            writer.close()
            if body:
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"no answer on {host}:{host_port}")

    # Through the DNAT rules on the host's own addresses: the bridge gateway and loopback.
    assert f"hello from {uid}" in await fetch(info.gateway)
    assert f"hello from {uid}" in await fetch("127.0.0.1")
    assert any(f"--dport {host_port}" in line for line in nat_rules())

    proc.kill()
    await proc.wait()
    await net.teardown(uid)
    assert not any(f"--dport {host_port}" in line for line in nat_rules())


@needs_host
async def test_teardown_removes_veth_address_and_netns(harness: Harness) -> None:
    net = harness.network()
    uid = harness.uid()
    info = await net.setup(uid, "default", "p", [{"containerPort": 80, "hostPort": random.randint(20000, 29999)}])
    assert allocations(harness) == [info.ip]
    assert len(bridge_ports(harness)) == 1
    assert any(uid in line for line in nat_rules())

    await net.teardown(uid)
    assert allocations(harness) == []
    assert bridge_ports(harness) == []
    assert not Path(info.netns_path).exists()
    assert not any(uid in line for line in nat_rules())
    await net.teardown(uid)  # DEL is idempotent


@needs_host
async def test_new_agent_tears_down_what_the_old_one_set_up(harness: Harness) -> None:
    old = harness.network()
    uid = harness.uid()
    info = await old.setup(uid, "default", "p", [{"containerPort": 80, "hostPort": random.randint(20000, 29999)}])
    del old

    restarted = harness.network()
    assert await restarted.setup(uid, "default", "p", []) == info  # kept, not set up twice
    await restarted.teardown(uid)
    assert allocations(harness) == [] and bridge_ports(harness) == []
    assert not Path(info.netns_path).exists()
    assert not any(uid in line for line in nat_rules())


@needs_host
async def test_teardown_after_the_netns_vanished(harness: Harness) -> None:
    net = harness.network(per_pod_masq=True)  # also removes the plugin's per-pod masquerade chain
    uid = harness.uid()
    info = await net.setup(uid, "default", "p", [])
    chain = masq_chain(harness.bridge, uid)
    assert any(line.startswith(f":{chain} ") for line in nat_rules())
    sh("ip", "netns", "delete", PodNetwork.netns_name(uid))

    await net.teardown(uid)
    assert not any(chain in line for line in nat_rules())
    assert allocations(harness) == [] and not Path(info.netns_path).exists()


@needs_host
async def test_cleanup_stale_keeps_only_listed_pods(harness: Harness) -> None:
    net = harness.network()
    keep, stale, unrecorded = harness.uid(), harness.uid(), harness.uid()
    infos = {uid: await net.setup(uid, "default", uid[:5], []) for uid in (keep, stale, unrecorded)}
    # A pod whose record is lost still holds its address in host-local's store.
    (harness.root / "cni" / "pods" / f"{unrecorded}.json").unlink()

    removed = await harness.network().cleanup_stale({keep})
    assert removed == sorted([stale, unrecorded])
    assert allocations(harness) == [infos[keep].ip]
    assert Path(infos[keep].netns_path).exists()
    assert not Path(infos[stale].netns_path).exists() and not Path(infos[unrecorded].netns_path).exists()
    assert len(bridge_ports(harness)) == 1
    assert not any(stale in line or unrecorded in line for line in nat_rules())
    assert await ping(PodNetwork.netns_name(keep), infos[keep].gateway)


@needs_host
async def test_failed_setup_leaves_nothing(harness: Harness) -> None:
    net = harness.network()
    uid = harness.uid()
    with pytest.raises(CNIError) as err:
        await net.setup(uid, "default", "bad", [{"containerPort": 80, "hostPort": 70000}])
    assert err.value.plugin == "portmap"
    assert allocations(harness) == [] and bridge_ports(harness) == []
    assert not Path(net.netns_path(uid)).exists()
    assert not (harness.root / "cni" / "pods" / f"{uid}.json").exists()

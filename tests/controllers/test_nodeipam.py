"""The node IPAM controller: pod CIDRs for Nodes from the cluster CIDR."""

from __future__ import annotations

import ipaddress

from sampan.client.interface import EVENTS, NODES
from sampan.controllers.base import ControllerOptions
from sampan.controllers.nodeipam import CIDRSet, parse_cluster_cidrs
from tests.controllers.conftest import eventually


def node(name: str, cidr: str | None = None, **labels: str) -> dict:
    obj: dict = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {}}
    if cidr:
        obj["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    return obj


async def pod_cidrs(client, name: str) -> list[str]:
    got = await client.get(NODES, name)
    cidrs = (got.get("spec") or {}).get("podCIDRs") or []
    if cidrs:
        assert got["spec"]["podCIDR"] == cidrs[0]
    return cidrs


def test_cidr_set_allocates_each_block_once() -> None:
    cidr_set = CIDRSet(ipaddress.ip_network("198.18.0.0/22"), 24)
    blocks = [cidr_set.allocate() for _ in range(4)]
    assert [str(b) for b in blocks] == ["198.18.0.0/24", "198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"]
    assert cidr_set.allocate() is None
    cidr_set.release(ipaddress.ip_network("198.18.2.0/24"))
    assert str(cidr_set.allocate()) == "198.18.2.0/24"
    # Blocks outside the range or of another size are not ours to track.
    assert not cidr_set.occupy(ipaddress.ip_network("198.19.0.0/24"))
    assert not cidr_set.occupy(ipaddress.ip_network("198.18.0.0/25"))


def test_dual_stack_and_small_ranges() -> None:
    sets = parse_cluster_cidrs("198.18.0.0/16, fd00:42::/56")
    assert [(s.cluster.version, s.mask, s.size) for s in sets] == [(4, 24, 256), (6, 64, 256)]
    tiny = parse_cluster_cidrs("198.18.0.0/26")[0]
    assert str(tiny.allocate()) == "198.18.0.0/26" and tiny.allocate() is None


async def test_allocates_distinct_blocks_and_reuses_released(client, start_controllers) -> None:
    await client.create(NODES, node("taken", "198.18.0.0/24"))
    options = ControllerOptions(cluster_cidr="198.18.0.0/22")
    await start_controllers("nodeipam", options=options)
    for name in ("a", "b"):
        await client.create(NODES, node(name))
    a = await eventually(lambda: pod_cidrs(client, "a"))
    b = await eventually(lambda: pod_cidrs(client, "b"))
    # The block a Node already had before the controller started is never handed out again.
    assert sorted(a + b) == ["198.18.1.0/24", "198.18.2.0/24"]
    assert await pod_cidrs(client, "taken") == ["198.18.0.0/24"]

    await client.delete(NODES, "a")
    await client.create(NODES, node("c"))
    await client.create(NODES, node("d"))
    c = await eventually(lambda: pod_cidrs(client, "c"))
    d = await eventually(lambda: pod_cidrs(client, "d"))
    assert sorted(b + c + d) == ["198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"]
    assert set(a) & set(c + d), "the deleted node's block was not reused"


async def test_exhausted_range_records_event_then_recovers(client, start_controllers) -> None:
    await start_controllers("nodeipam", options=ControllerOptions(cluster_cidr="198.18.0.0/24"))
    await client.create(NODES, node("first", type="simulated"))
    assert await eventually(lambda: pod_cidrs(client, "first")) == ["198.18.0.0/24"]
    await client.create(NODES, node("second"))

    async def event() -> dict | None:
        items = (await client.list(EVENTS, "default"))["items"]
        found = [e for e in items if e["reason"] == "CIDRNotAvailable" and e["involvedObject"]["name"] == "second"]
        return found[0] if found else None

    ev = await eventually(event)
    assert ev["type"] == "Normal" and ev["message"] == "Node second status is now: CIDRNotAvailable"
    assert ev["source"]["component"] == "cidrAllocator" and ev["involvedObject"]["kind"] == "Node"
    assert await pod_cidrs(client, "second") == []

    await client.delete(NODES, "first")
    assert await eventually(lambda: pod_cidrs(client, "second")) == ["198.18.0.0/24"]


async def test_restart_rebuilds_from_nodes(client, start_controllers) -> None:
    options = ControllerOptions(cluster_cidr="198.18.0.0/23")
    manager = await start_controllers("nodeipam", options=options)
    await client.create(NODES, node("one"))
    one = await eventually(lambda: pod_cidrs(client, "one"))
    await manager.stop()

    # A new controller (a restarted server) learns "one"'s block from the Node itself.
    await start_controllers("nodeipam", options=options)
    await client.create(NODES, node("two"))
    two = await eventually(lambda: pod_cidrs(client, "two"))
    assert sorted(one + two) == ["198.18.0.0/24", "198.18.1.0/24"]


async def test_dual_stack_nodes_get_one_block_per_family(client, start_controllers) -> None:
    await start_controllers("nodeipam", options=ControllerOptions(cluster_cidr="198.18.0.0/16,fd00:42::/56"))
    await client.create(NODES, node("dual"))
    assert await eventually(lambda: pod_cidrs(client, "dual")) == ["198.18.0.0/24", "fd00:42::/64"]

"""Node IPAM: gives each Node a pod CIDR (``spec.podCIDR`` / ``spec.podCIDRs``) carved out of
the cluster CIDR, like upstream's range allocator.

Blocks are /24 for IPv4 and /64 for IPv6 (upstream's default node-cidr-mask-size);
``options.extra["node_cidr_mask_size"]`` overrides the IPv4 size. A dual-stack cluster CIDR
("a,b") gives each node one block per family. The set of used blocks lives in memory and is
rebuilt from the Nodes' own specs on start, so a restart never hands out a block twice.
Deleting a Node frees its blocks. When the range is full the Node gets a
``CIDRNotAvailable`` event (as upstream's ``cidrAllocator``) and waits for a block to free up.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from sampan.client.events import NORMAL
from sampan.client.interface import NODES, Obj, is_not_found
from sampan.controllers.base import Controller, register

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_BLOCK_BITS = 16  # upstream refuses more than 2^16 node blocks per cluster CIDR
EXHAUSTED_RETRY = 30.0


class CIDRSet:
    """The blocks of one cluster CIDR and which of them are taken."""

    def __init__(self, cluster: Network, mask: int) -> None:
        if mask < cluster.prefixlen:
            mask = cluster.prefixlen  # a range smaller than one block is one block
        self.cluster = cluster
        self.mask = mask
        self.size = 1 << min(mask - cluster.prefixlen, MAX_BLOCK_BITS)
        self.used: set[int] = set()
        self._next = 0

    def _index(self, block: Network) -> int | None:
        if block.version != self.cluster.version or block.prefixlen != self.mask:
            return None
        if not block.subnet_of(self.cluster):  # type: ignore[arg-type]
            return None
        index = (int(block.network_address) - int(self.cluster.network_address)) >> (block.max_prefixlen - self.mask)
        return index if index < self.size else None

    def _block(self, index: int) -> Network:
        shift = self.cluster.max_prefixlen - self.mask
        address = int(self.cluster.network_address) + (index << shift)
        return ipaddress.ip_network((address, self.mask))

    def occupy(self, block: Network) -> bool:
        index = self._index(block)
        if index is None:
            return False
        self.used.add(index)
        return True

    def release(self, block: Network) -> None:
        index = self._index(block)
        if index is not None:
            self.used.discard(index)

    def allocate(self) -> Network | None:
        """The next free block after the last one handed out (wrapping), or None when full."""
        if len(self.used) >= self.size:
            return None
        for step in range(self.size):
            index = (self._next + step) % self.size
            if index not in self.used:
                self.used.add(index)
                self._next = (index + 1) % self.size
                return self._block(index)
        return None


def parse_cluster_cidrs(value: str, v4_mask: int = 24, v6_mask: int = 64) -> list[CIDRSet]:
    sets: list[CIDRSet] = []
    for part in value.split(","):
        part = part.strip()
        if part:
            network = ipaddress.ip_network(part, strict=False)
            sets.append(CIDRSet(network, v4_mask if network.version == 4 else v6_mask))
    return sets


@dataclass
class _Held:
    uid: str
    blocks: list[Network] = field(default_factory=list)


def _node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


@register
class NodeIPAMController(Controller):
    name = "nodeipam"
    component = "cidrAllocator"

    def setup(self) -> None:
        self.nodes = self.watch(NODES)
        mask = int(self.ctx.options.extra.get("node_cidr_mask_size", 24))
        self.sets = parse_cluster_cidrs(self.ctx.options.cluster_cidr, v4_mask=mask)
        self.held: dict[str, _Held] = {}
        self.waiting: set[str] = set()  # nodes that found the range full
        self._rebuilt = False

    def _rebuild(self) -> None:
        """Marks every block that existing Nodes already carry as taken (runs once, after sync)."""
        for node in self.nodes.list():
            self._occupy(node)
        self._rebuilt = True

    def _occupy(self, node: Obj) -> None:
        meta = node.get("metadata") or {}
        blocks: list[Network] = []
        for text in _node_cidrs(node):
            try:
                block = ipaddress.ip_network(text, strict=False)
            except ValueError:
                continue
            if any(s.occupy(block) for s in self.sets):
                blocks.append(block)
        self.held[meta.get("name", "")] = _Held(meta.get("uid", ""), blocks)

    def _release(self, name: str) -> None:
        held = self.held.pop(name, None)
        if held is None or not held.blocks:
            return
        for block in held.blocks:
            for cidr_set in self.sets:
                cidr_set.release(block)
        # A block is free again: nodes that found the range full can try now.
        for waiting in sorted(self.waiting):
            self.queue.add(waiting)
        self.waiting.clear()

    async def reconcile(self, key: str) -> float | None:
        if not self.sets:
            return None
        if not self._rebuilt:
            self._rebuild()
        node = self.nodes.get(key)
        held = self.held.get(key)
        if node is None:
            self.waiting.discard(key)
            self._release(key)
            return None
        uid = (node.get("metadata") or {}).get("uid", "")
        if held is not None and held.uid != uid:
            self._release(key)  # deleted and created again under the same name
            held = None
        if _node_cidrs(node):
            if held is None or [str(b) for b in held.blocks] != _node_cidrs(node):
                if held is not None:
                    self._release(key)  # someone else set the node's CIDRs first
                self._occupy(node)
            self.waiting.discard(key)
            return None
        if held is None or not held.blocks:
            blocks = self._allocate()
            if blocks is None:
                self.waiting.add(key)
                self.recorder.event(node, NORMAL, "CIDRNotAvailable", f"Node {key} status is now: CIDRNotAvailable")
                return EXHAUSTED_RETRY
            held = self.held[key] = _Held(uid, blocks)
        await self._write(node, held)
        return None

    def _allocate(self) -> list[Network] | None:
        blocks: list[Network] = []
        for cidr_set in self.sets:
            block = cidr_set.allocate()
            if block is None:
                for taken in blocks:  # all families or none
                    for other in self.sets:
                        other.release(taken)
                return None
            blocks.append(block)
        return blocks

    async def _write(self, node: Obj, held: _Held) -> None:
        name = node["metadata"]["name"]
        cidrs = [str(b) for b in held.blocks]
        patch = {"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}}
        try:
            await self.client.patch(NODES, name, patch, "merge")
        except Exception as exc:
            if is_not_found(exc):
                self._release(name)
                return
            # Keep the blocks reserved: the retry writes the same ones.
            self.recorder.event(node, NORMAL, "CIDRAssignmentFailed", f"Node {name} status is now: CIDRAssignmentFailed")
            raise
        log.info("node %s: pod CIDRs %s", name, ",".join(cidrs))

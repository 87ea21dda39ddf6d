"""Service ClusterIP and NodePort allocation.

Every allocated value is one store key (``/sampan/allocations/<kind>/<value>``) created
with the store's create-if-absent; the key records which Service holds it. Two racing
creates can never both get a value (the backend lets exactly one create win), and
because the keys live in the same store as the Services, a restart keeps them. Values
held by no Service (a crash between allocating and storing the Service) are dropped by
``repair`` before the server serves.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from sampan.store import interface as st

PREFIX = "/sampan/allocations/"
PROBES = 8  # random tries before reading the whole range
# An allocation this young may belong to a create still in flight on another server.
REPAIR_GRACE_SECONDS = 60.0

Owner = dict[str, str]


class AllocationError(Exception):
    """``reason`` is "allocated", "range" or "full"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RangeAllocator:
    """Integers in [first, last], each held by at most one owner."""

    def __init__(
        self,
        store: st.Store,
        kind: str,
        first: int,
        last: int,
        fmt: Callable[[int], str],
        reserved: frozenset[int] = frozenset(),
        static_band: int = 0,
    ) -> None:
        self.store = store
        self.prefix = f"{PREFIX}{kind}/"
        self.first, self.last = first, last
        self.fmt = fmt
        self.reserved = reserved  # never handed out dynamically
        # Dynamic allocation prefers values above the band kept for explicit requests.
        self.static_band = static_band

    def contains(self, value: int) -> bool:
        return self.first <= value <= self.last

    def key(self, value: int) -> str:
        return self.prefix + self.fmt(value)

    async def allocate(self, value: int, owner: Owner, dry_run: bool = False) -> None:
        if not self.contains(value):
            raise AllocationError("range")
        if dry_run:
            try:
                await self.store.get(self.key(value))
            except st.NotFound:
                return
            raise AllocationError("allocated")
        try:
            await self.store.create(self.key(value), _record(owner))
        except st.AlreadyExists:
            raise AllocationError("allocated") from None

    async def allocate_next(self, owner: Owner, dry_run: bool = False) -> int:
        lo = min(self.first + self.static_band, self.last)
        for _ in range(PROBES):
            value = random.randint(lo, self.last)
            if value in self.reserved:
                continue
            try:
                await self.allocate(value, owner, dry_run)
                return value
            except AllocationError:
                continue
        # Crowded: pick among the values known to be free.
        for _ in range(PROBES):
            held = set((await self.holders()).keys()) | self.reserved
            upper = [v for v in range(lo, self.last + 1) if v not in held]
            free = upper or [v for v in range(self.first, lo) if v not in held]
            if not free:
                raise AllocationError("full")
            value = random.choice(free)
            try:
                await self.allocate(value, owner, dry_run)
                return value
            except AllocationError:
                continue
        raise AllocationError("full")

    async def release(self, value: int, owner: Owner) -> None:
        """Frees ``value`` if ``owner`` (same uid) still holds it."""

        def same_owner(current: st.KeyValue) -> None:
            if _owner_of(current.value).get("uid") != owner.get("uid"):
                raise st.Conflict(current.key, "held by another owner")

        try:
            await self.store.delete(self.key(value), st.Preconditions(check=same_owner))
        except (st.NotFound, st.Conflict):
            pass

    async def holders(self) -> dict[int, tuple[Owner, float]]:
        """Every allocated value with its owner and allocation time."""
        out: dict[int, tuple[Owner, float]] = {}
        token: str | None = None
        while True:
            page = await self.store.list(self.prefix, limit=5000, continue_token=token)
            for kv in page.items:
                value = self.parse(kv.key[len(self.prefix) :])
                if value is not None:
                    data = _decode(kv.value)
                    out[value] = (data.get("owner") or {}, float(data.get("time") or 0))
            token = page.continue_token
            if not token:
                return out

    def parse(self, text: str) -> int | None:
        raise NotImplementedError


class IPAllocator(RangeAllocator):
    """Host addresses of the service CIDR; the first one is kept for the ``kubernetes`` Service."""

    def __init__(self, store: st.Store, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        base = int(self.network.network_address)
        first, last = base + 1, int(self.network.broadcast_address) - 1
        if self.network.num_addresses <= 2:
            first, last = base, int(self.network.broadcast_address)
        size = last - first + 1
        band = min(max(16, size // 16), 256) if size > 32 else 0
        cls = type(self.network.network_address)
        super().__init__(store, "serviceips", first, last, lambda v: str(cls(v)), frozenset({first}), band)

    @property
    def first_ip(self) -> str:
        return self.fmt(self.first)

    def parse(self, text: str) -> int | None:
        try:
            return int(ipaddress.ip_address(text))
        except ValueError:
            return None


class PortAllocator(RangeAllocator):
    def __init__(self, store: st.Store, first: int, last: int) -> None:
        size = last - first + 1
        band = min(max(16, size // 32), 128) if size > 32 else 0
        super().__init__(store, "nodeports", first, last, str, frozenset(), band)

    def parse(self, text: str) -> int | None:
        return int(text) if text.isdigit() else None


class ServiceAllocators:
    """The two ranges a Service draws from."""

    def __init__(self, store: st.Store, service_cidr: str, node_port_range: tuple[int, int]) -> None:
        self.ips = IPAllocator(store, service_cidr)
        self.ports = PortAllocator(store, *node_port_range)
        self.cidr = str(self.ips.network)

    async def repair(self, services: list[dict[str, Any]], now: float | None = None) -> None:
        """Drops allocations no Service holds (older than the grace period) and records
        values Services hold but no key does (data from before allocation keys existed)."""
        from sampan.registry.services import held_values  # services imports this module

        now = time.time() if now is None else now
        wanted: dict[tuple[str, int], Owner] = {}
        for svc in services:
            for kind, value in held_values(svc, self):
                wanted[(kind, value)] = owner_of(svc)
        for kind, allocator in (("ip", self.ips), ("port", self.ports)):
            holders = await allocator.holders()
            for value, (owner, since) in holders.items():
                held_by = wanted.get((kind, value))
                # The first address is only ever taken by this server's own start-up, which
                # runs after this repair: a leak of it is from a start that was cut short.
                own = kind == "ip" and value == self.ips.first
                stale = own or now - since > REPAIR_GRACE_SECONDS
                if (held_by is None or held_by.get("uid") != owner.get("uid")) and stale:
                    await allocator.release(value, owner)
            for (k, value), owner in wanted.items():
                if k == kind and value not in holders:
                    try:
                        await allocator.allocate(value, owner)
                    except AllocationError:
                        pass


def owner_of(svc: dict[str, Any]) -> Owner:
    m = svc.get("metadata") or {}
    return {"namespace": m.get("namespace", ""), "name": m.get("name", ""), "uid": m.get("uid", "")}


def _record(owner: Owner) -> bytes:
    return orjson.dumps({"owner": owner, "time": time.time()})


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _owner_of(raw: bytes) -> Owner:
    return _decode(raw).get("owner") or {}

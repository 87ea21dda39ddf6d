"""The Service strategy: ClusterIP and NodePort allocation on create and update, release
on delete and type change (what upstream's service REST storage does around the
generic store)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import partial
from typing import Any

from sampan.api import errors
from sampan.registry.allocators import AllocationError, RangeAllocator, ServiceAllocators, owner_of
from sampan.registry.meta import Obj
from sampan.registry.strategy import Finish, Strategy

Held = tuple[str, int]  # ("ip" | "port", value)


def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def needs_cluster_ip(obj: Obj) -> bool:
    spec = _spec(obj)
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def needs_node_ports(obj: Obj) -> bool:
    spec = _spec(obj)
    stype = spec.get("type")
    if stype == "NodePort":
        return True
    return stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def needs_health_check_port(obj: Obj) -> bool:
    spec = _spec(obj)
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _ports(obj: Obj) -> list[dict[str, Any]]:
    return [p for p in _spec(obj).get("ports") or [] if isinstance(p, dict)]


def held_values(svc: Obj, allocators: ServiceAllocators) -> set[Held]:
    """The range values a stored Service holds."""
    spec = _spec(svc)
    out: set[Held] = set()
    ip = spec.get("clusterIP")
    if needs_cluster_ip(svc) and isinstance(ip, str) and ip:
        value = allocators.ips.parse(ip)
        if value is not None and allocators.ips.contains(value):
            out.add(("ip", value))
    if needs_node_ports(svc):
        for port in _ports(svc):
            if isinstance(port.get("nodePort"), int) and allocators.ports.contains(port["nodePort"]):
                out.add(("port", port["nodePort"]))
    hc = spec.get("healthCheckNodePort")
    if needs_health_check_port(svc) and isinstance(hc, int) and allocators.ports.contains(hc):
        out.add(("port", hc))
    return out


def _invalid(svc: Obj, field: str, value: str, message: str) -> errors.APIError:
    cause = errors.cause("FieldValueInvalid", f"Invalid value: {value}: {message}", field)
    return errors.invalid("Service", "", (svc.get("metadata") or {}).get("name", ""), [cause])


class ServiceStrategy(Strategy):
    def __init__(self, allocators: ServiceAllocators) -> None:
        super().__init__("", "services", True)
        self.allocators = allocators

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        _patch_allocated_values(new, old)
        _drop_type_dependent_fields(new, old)

    # -- allocation ---------------------------------------------------------------
    async def begin_create(self, obj: Obj, dry_run: bool) -> Finish | None:
        return await self._allocate(obj, set(), dry_run)

    async def begin_update(self, new: Obj, old: Obj, dry_run: bool) -> Finish | None:
        return await self._allocate(new, held_values(old, self.allocators), dry_run)

    async def after_delete(self, obj: Obj) -> None:
        await self._release(obj, held_values(obj, self.allocators))

    async def _release(self, obj: Obj, values: set[Held]) -> None:
        owner = owner_of(obj)
        for kind, value in values:
            allocator = self.allocators.ips if kind == "ip" else self.allocators.ports
            await allocator.release(value, owner)

    async def _allocate(self, svc: Obj, old_held: set[Held], dry_run: bool) -> Finish:
        """Fills in and reserves what ``svc`` needs; values in ``old_held`` are already its own.
        The returned finish releases the new values on failure, the dropped old ones on success."""
        owner = owner_of(svc)
        taken: set[Held] = set()
        try:
            await self._allocate_ip(svc, owner, old_held, taken, dry_run)
            await self._allocate_ports(svc, owner, old_held, taken, dry_run)
        except BaseException:
            if not dry_run:
                await self._release(svc, taken)
            raise
        kept = held_values(svc, self.allocators)

        async def finish(success: bool) -> None:
            if dry_run:
                return
            await self._release(svc, (old_held - kept) if success else taken)

        return finish

    async def _take(
        self, kind: str, value: int | None, owner: dict[str, str], old_held: set[Held], taken: set[Held], dry_run: bool
    ) -> int:
        allocator: RangeAllocator = self.allocators.ips if kind == "ip" else self.allocators.ports
        if value is not None and ((kind, value) in old_held or (kind, value) in taken):
            return value
        if value is None:
            value = await allocator.allocate_next(owner, dry_run)
        else:
            await allocator.allocate(value, owner, dry_run)
        taken.add((kind, value))
        return value

    async def _allocate_ip(
        self, svc: Obj, owner: dict[str, str], old_held: set[Held], taken: set[Held], dry_run: bool
    ) -> None:
        spec = svc.setdefault("spec", {})
        if spec.get("type", "ClusterIP") == "ExternalName":
            return
        if spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
            return
        requested = spec.get("clusterIP") or None
        if requested is None and spec.get("clusterIPs"):
            requested = spec["clusterIPs"][0] or None
        ips = self.allocators.ips
        value: int | None = None
        if requested is not None:
            shown = f'[]string{{"{requested}"}}'
            try:
                addr = ipaddress.ip_address(requested)
            except ValueError:
                raise _invalid(svc, "spec.clusterIPs[0]", f'"{requested}"', "must be a valid IP address") from None
            value = int(addr)
            if addr.version != ips.network.version or not ips.contains(value):
                why = (
                    f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. "
                    f"The range of valid IPs is {self.allocators.cidr}"
                )
                raise _invalid(svc, "spec.clusterIPs", shown, why)
        try:
            value = await self._take("ip", value, owner, old_held, taken, dry_run)
        except AllocationError as exc:
            if exc.reason == "full":
                raise errors.internal("failed to allocate a serviceIP: range is full") from None
            why = f"failed to allocate IP {requested}: provided IP is already allocated"
            raise _invalid(svc, "spec.clusterIPs", f'[]string{{"{requested}"}}', why) from None
        ip = ips.fmt(value)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    async def _allocate_ports(
        self, svc: Obj, owner: dict[str, str], old_held: set[Held], taken: set[Held], dry_run: bool
    ) -> None:
        spec = svc.setdefault("spec", {})
        wanted: list[tuple[str, Any, Callable[[int], None]]] = []
        if needs_node_ports(svc):
            for i, port in enumerate(_ports(svc)):
                wanted.append((f"spec.ports[{i}].nodePort", port.get("nodePort"), partial(port.__setitem__, "nodePort")))
        if needs_health_check_port(svc):
            hc = spec.get("healthCheckNodePort")
            wanted.append(("spec.healthCheckNodePort", hc, partial(spec.__setitem__, "healthCheckNodePort")))
        for field, requested, store in wanted:
            value = requested if isinstance(requested, int) and requested else None
            store(await self._port(svc, field, value, (owner, old_held, taken, dry_run)))

    async def _port(self, svc: Obj, field: str, value: int | None, ctx: tuple[Any, Any, Any, bool]) -> int:
        try:
            return await self._take("port", value, *ctx)
        except AllocationError as exc:
            if exc.reason == "full":
                raise errors.internal("failed to allocate a nodePort: range is full") from None
            if exc.reason == "range":
                ports = self.allocators.ports
                why = f"provided port is not in the valid range. The range of valid ports is {ports.first}-{ports.last}"
                raise _invalid(svc, field, str(value), why) from None
            raise _invalid(svc, field, str(value), "provided port is already allocated") from None


def _patch_allocated_values(new: Obj, old: Obj) -> None:
    """An update that leaves out allocated values (kubectl apply, replace) keeps the old ones."""
    nspec, ospec = new.setdefault("spec", {}), _spec(old)
    if needs_cluster_ip(old) and needs_cluster_ip(new):
        if not nspec.get("clusterIP") and ospec.get("clusterIP"):
            nspec["clusterIP"] = ospec["clusterIP"]
        if not nspec.get("clusterIPs") and ospec.get("clusterIPs") and nspec.get("clusterIP") == ospec.get("clusterIP"):
            nspec["clusterIPs"] = list(ospec["clusterIPs"])
    if needs_node_ports(old) and needs_node_ports(new):
        by_port = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in _ports(old)}
        by_name = {p.get("name"): p.get("nodePort") for p in _ports(old) if p.get("name")}
        for port in _ports(new):
            if not port.get("nodePort"):
                found = by_port.get((port.get("port"), port.get("protocol", "TCP"))) or by_name.get(port.get("name"))
                if found:
                    port["nodePort"] = found
    if needs_health_check_port(old) and needs_health_check_port(new):
        if not nspec.get("healthCheckNodePort") and ospec.get("healthCheckNodePort"):
            nspec["healthCheckNodePort"] = ospec["healthCheckNodePort"]


def _drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """A type change clears the values the new type has no use for, unless the client changed them."""
    nspec, ospec = new.setdefault("spec", {}), _spec(old)
    if needs_cluster_ip(old) and not needs_cluster_ip(new) and nspec.get("clusterIP") == ospec.get("clusterIP"):
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            nspec.pop(key, None)
    if needs_node_ports(old) and not needs_node_ports(new):
        old_ports = {p.get("nodePort") for p in _ports(old)}
        for port in _ports(new):
            if port.get("nodePort") in old_ports:
                port.pop("nodePort", None)
    if needs_health_check_port(old) and not needs_health_check_port(new):
        if nspec.get("healthCheckNodePort") == ospec.get("healthCheckNodePort"):
            nspec.pop("healthCheckNodePort", None)
    external = ("NodePort", "LoadBalancer")
    if ospec.get("type") in external and nspec.get("type") not in external:
        if nspec.get("externalTrafficPolicy") == ospec.get("externalTrafficPolicy"):
            nspec.pop("externalTrafficPolicy", None)
    if ospec.get("type") == "LoadBalancer" and nspec.get("type") != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if nspec.get(key) == ospec.get(key):
                nspec.pop(key, None)
    if nspec.get("type") == "ExternalName" and nspec.get("internalTrafficPolicy") == ospec.get("internalTrafficPolicy"):
        nspec.pop("internalTrafficPolicy", None)


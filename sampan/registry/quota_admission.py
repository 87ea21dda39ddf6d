"""The ResourceQuota admission plugin: refuses writes that would take a namespace over
one of its quotas, and charges the quota's status.used for the ones it lets through.

The charge is a compare-and-swap on the quota object (the store's guaranteed_update),
re-checked against the latest usage inside it, so concurrent creates can never together
exceed a quota. Like upstream, a charge for a write that then fails is not refunded
here: the resourcequota controller recomputes usage from the objects themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampan.api import quota as q
from sampan.registry.admission import CREATE, UPDATE, AdmissionPlugin, Attributes
from sampan.registry.meta import Obj, decode, encode
from sampan.registry.options import ListOptions
from sampan.store import interface as st

if TYPE_CHECKING:
    from sampan.registry.registry import Registry

# Updates that can change usage (a Service's type, a claim's size); pods are immutable.
_UPDATES = {("", "services"), ("", "persistentvolumeclaims")}


class ResourceQuotaAdmission(AdmissionPlugin):
    name = "ResourceQuota"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def handles(self, attrs: Attributes) -> bool:
        if attrs.subresource or not attrs.info.namespaced:
            return False
        return attrs.operation == CREATE or (attrs.operation == UPDATE and attrs.resource in _UPDATES)

    async def validate(self, attrs: Attributes) -> None:
        namespace = attrs.namespace
        quotas = await self._quotas(namespace)
        if not quotas:
            return
        group, plural = attrs.resource
        delta = q.usage(group, plural, attrs.obj)
        if attrs.old is not None:
            delta = q.subtract(delta, q.usage(group, plural, attrs.old))
            delta = {k: v for k, v in delta.items() if not v.is_zero()}
        charges: list[tuple[Obj, q.Usage]] = []
        for quota in quotas:
            if not q.quota_matches(quota, group, plural, attrs.obj):
                continue
            hard_names = set(((quota.get("spec") or {}).get("hard") or {}).keys())
            self._check_constraints(attrs, quota, hard_names)
            requested = {k: v for k, v in delta.items() if k in hard_names}
            if not requested:
                continue
            status = quota.get("status") or {}
            unknown = sorted(k for k in requested if k not in (status.get("hard") or {}))
            if unknown:
                name = quota["metadata"]["name"]
                raise attrs.forbidden(f"status unknown for quota: {name}, resources: {','.join(unknown)}")
            _check(attrs, quota, requested)
            charges.append((quota, requested))
        if attrs.dry_run:
            return
        charged: list[tuple[Obj, q.Usage]] = []
        try:
            for quota, requested in charges:
                await self._charge(attrs, quota, requested)
                charged.append((quota, requested))
        except BaseException:
            for quota, requested in charged:
                await self._charge(attrs, quota, {k: -v for k, v in requested.items()}, check=False)
            raise

    def _check_constraints(self, attrs: Attributes, quota: Obj, hard_names: set[str]) -> None:
        """With a quota on cpu or memory, every container must state them (upstream's rule)."""
        if attrs.resource != ("", "pods") or attrs.operation != CREATE:
            return
        missing = q.missing_compute(attrs.obj, hard_names)
        if missing:
            parts = [f"{res} for: {','.join(sorted(set(names)))}" for res, names in sorted(missing.items())]
            raise attrs.forbidden(f"failed quota: {quota['metadata']['name']}: must specify {'; '.join(parts)}")

    async def _quotas(self, namespace: str) -> list[Obj]:
        rs = self.registry.must("", "v1", "resourcequotas")
        # Most namespaces have no quota: a count (from the watch cache) is far cheaper than a list.
        if not await self.registry.store.count(rs.info.collection_prefix(namespace)):
            return []
        listed = await rs.list(namespace, ListOptions())
        return list(listed.get("items") or [])

    async def _charge(self, attrs: Attributes, quota: Obj, requested: q.Usage, check: bool = True) -> None:
        rs = self.registry.must("", "v1", "resourcequotas")
        m = quota["metadata"]

        def try_update(current: st.KeyValue | None) -> bytes:
            assert current is not None
            live = decode(current.value, current.revision)
            if live["metadata"].get("uid") != m.get("uid"):
                raise st.Conflict(current.key, "quota was replaced")
            if check:
                _check(attrs, live, requested)
            status = live.setdefault("status", {})
            used = q.add(q.parse(status.get("used")), requested)
            status["used"] = {**(status.get("used") or {}), **q.render({k: used[k] for k in requested})}
            live["metadata"].pop("resourceVersion", None)
            return encode(live)

        try:
            await rs.store.guaranteed_update(rs.key(m["namespace"], m["name"]), try_update)
        except (st.NotFound, st.Conflict):
            pass  # the quota is gone; nothing to charge


def _check(attrs: Attributes, quota: Obj, requested: q.Usage) -> None:
    status = quota.get("status") or {}
    hard, used = q.parse(status.get("hard")), q.parse(status.get("used"))
    exceeded = sorted(
        k for k, v in requested.items() if k in hard and hard[k] < used.get(k, q.Quantity(0)) + v and v.amount > 0
    )
    if exceeded:
        name = quota["metadata"]["name"]
        req = {k: requested[k] for k in exceeded}
        now = {k: used.get(k, q.Quantity(0)) for k in exceeded}
        lim = {k: hard[k] for k in exceeded}
        raise attrs.forbidden(
            f"exceeded quota: {name}, requested: {q.pretty(req)}, used: {q.pretty(now)}, limited: {q.pretty(lim)}"
        )


"""The ResourceQuota controller: keeps each quota's status.hard (the spec, canonical) and
status.used (what the namespace's objects use) current, so admission can charge against it."""

from __future__ import annotations

from typing import Any

from sampan.api import quota as q
from sampan.client.interface import (
    CONFIGMAPS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    SECRETS,
    SERVICES,
    ResourceRef,
    is_conflict,
    is_not_found,
    split_key,
)
from sampan.controllers.base import Controller, register

Obj = dict[str, Any]

RESOURCEQUOTAS = ResourceRef("", "v1", "resourcequotas")
# Kinds whose released usage triggers a recount at once; others are recounted periodically.
_WATCHED = (PODS, SERVICES, CONFIGMAPS, SECRETS, PERSISTENTVOLUMECLAIMS, RESOURCEQUOTAS)
RESYNC_SECONDS = 300.0


def _hard(quota: Obj) -> Any:
    return (quota.get("spec") or {}).get("hard")


@register
class ResourceQuotaController(Controller):
    name = "resourcequota"
    component = "resource-quota-controller"
    workers = 2

    def setup(self) -> None:
        # Status changes are ours or admission's charges: only a new quota or a new spec.hard
        # needs a count. Recounting on every charge would race creates not yet stored.
        self.quotas = self.informer(RESOURCEQUOTAS)
        self.quotas.add_handler(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new) if _hard(old) != _hard(new) else None,
            on_delete=lambda _obj: None,
        )
        # Creates are charged by admission; what gives usage back (a deletion, a pod that
        # finished, a Service that changed type) triggers a recount, like upstream's replenishment.
        for ref in _WATCHED[:-1]:
            informer = self.informer(ref)

            def released(obj: Obj) -> None:
                self._enqueue_namespace((obj.get("metadata") or {}).get("namespace"))

            def updated(old: Obj, new: Obj, ref: ResourceRef = ref) -> None:
                if q.usage(ref.group, ref.plural, old) != q.usage(ref.group, ref.plural, new):
                    released(new)

            informer.add_handler(on_add=lambda _obj: None, on_update=updated, on_delete=released)

    def _enqueue_namespace(self, namespace: str | None) -> None:
        if namespace:
            for quota in self.quotas.list(namespace):
                self.enqueue(quota)

    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        if self.quotas.get(key) is None:
            return None
        try:  # a live read: its resourceVersion guards against admission charges made meanwhile
            quota = await self.client.get(RESOURCEQUOTAS, name, ns)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        hard = q.parse((quota.get("spec") or {}).get("hard"))
        used = await self._usage(quota, set(hard))
        status = {"hard": q.render(hard), "used": q.render(used)}
        if quota.get("status") != status:
            quota["status"] = status
            try:
                await self.client.update(RESOURCEQUOTAS, quota, subresource="status")
            except Exception as exc:
                if is_conflict(exc):
                    self.queue.add(key)  # charged meanwhile: count again
                    return None
                raise
        return RESYNC_SECONDS  # a full recount now and then repairs charges for writes that failed

    async def _usage(self, quota: Obj, names: set[str]) -> q.Usage:
        ns = quota["metadata"]["namespace"]
        total: q.Usage = {n: q.Quantity(0) for n in names}
        kinds = {q.resource_of(n) for n in names} - {None}
        for group, plural in sorted(kinds):  # type: ignore[type-var]
            try:
                listed = await self.client.list(ResourceRef(group, "v1", plural), ns)
            except Exception as exc:
                if is_not_found(exc):
                    continue  # not served (yet): nothing to count
                raise
            for obj in listed.get("items") or []:
                if q.quota_matches(quota, group, plural, obj):
                    usage = q.usage(group, plural, obj)
                    total = q.add(total, {k: v for k, v in usage.items() if k in names})
        return total

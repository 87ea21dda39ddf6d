"""The garbage collector: objects whose owners are gone are deleted.

It keeps a graph of ownership (uid -> object, owner uid -> dependent uids) fed by one
shared informer per resource the server serves, custom resources included. Work-queue
keys are uids. Per object it decides, like upstream's attemptToDeleteItem:

- an object whose every owner is absent (a "dangling" reference, verified with a live GET)
  is deleted, keeping the policy its own finalizers ask for;
- an owner deleted with propagationPolicy=Foreground carries ``foregroundDeletion``: its
  dependents are deleted, and the finalizer goes once no dependent with
  ``blockOwnerDeletion`` is left;
- an owner deleted with propagationPolicy=Orphan carries ``orphan``: its dependents lose
  their ownerReference to it, then the finalizer goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sampan.client.informer import Informer
from sampan.client.interface import Obj, ResourceRef, is_conflict, is_not_found
from sampan.controllers.base import Controller, register
from sampan.controllers.util.discovery import resource_for_kind, served_resources, table_generation

log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# Upstream's garbage collector ignores events: they are many and never own anything.
IGNORED = {("", "events"), ("events.k8s.io", "events")}
RESCAN_INTERVAL = 2.0  # how often to look for new resources (CRDs)

SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"


def _meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _owner_refs(obj: Obj) -> list[Obj]:
    return list(_meta(obj).get("ownerReferences") or [])


def _owner_uids(obj: Obj) -> set[str]:
    return {ref["uid"] for ref in _owner_refs(obj) if ref.get("uid")}


def _deletion_state(obj: Obj) -> tuple[Any, tuple[str, ...]]:
    m = _meta(obj)
    return m.get("deletionTimestamp"), tuple(m.get("finalizers") or ())


@register
class GarbageCollector(Controller):
    name = "garbagecollector"
    component = "garbage-collector-controller"
    workers = 4

    def setup(self) -> None:
        self.nodes: dict[str, tuple[ResourceRef, Obj]] = {}
        self.dependents: dict[str, set[str]] = {}
        self.monitors: dict[tuple[str, str], Informer] = {}
        self._generation = -1
        self._sync_monitors()

    # -- the graph ---------------------------------------------------------------
    def _sync_monitors(self) -> None:
        generation = table_generation(self.client)
        if generation == self._generation:
            return
        self._generation = generation
        for served in served_resources(self.client):
            key = (served.ref.group, served.ref.plural)
            if key in IGNORED or key in self.monitors or not {"list", "watch", "delete"} <= served.verbs:
                continue
            informer = self.informer(served.ref)
            self.monitors[key] = informer
            ref = served.ref
            informer.add_handler(
                on_add=lambda obj, ref=ref: self._observe(ref, None, obj),
                on_update=lambda old, new, ref=ref: self._observe(ref, old, new),
                on_delete=lambda obj, ref=ref: self._forget(obj),
            )

    def _observe(self, ref: ResourceRef, old: Obj | None, obj: Obj) -> None:
        uid = _meta(obj).get("uid")
        if not uid:
            return
        known = self.nodes.get(uid)
        before = known[1] if known is not None else old
        self.nodes[uid] = (ref, obj)
        old_owners = _owner_uids(before) if before is not None else set()
        new_owners = _owner_uids(obj)
        for owner in old_owners - new_owners:
            self._unlink(owner, uid)
            self.queue.add(owner)  # it may have been waiting for this dependent
        for owner in new_owners - old_owners:
            self.dependents.setdefault(owner, set()).add(uid)
        changed = before is None or old_owners != new_owners or _deletion_state(before) != _deletion_state(obj)
        if not changed:
            return
        deleting, finalizers = _deletion_state(obj)
        if new_owners or (deleting and (ORPHAN in finalizers or FOREGROUND in finalizers)):
            self.queue.add(uid)
        if deleting and FOREGROUND in finalizers and (before is None or not _deletion_state(before)[0]):
            for dep in self.dependents.get(uid, ()):
                self.queue.add(dep)

    def _forget(self, obj: Obj) -> None:
        uid = _meta(obj).get("uid")
        if not uid or uid not in self.nodes:
            return
        _ref, last = self.nodes.pop(uid)
        for owner in _owner_uids(last):
            self._unlink(owner, uid)
            self.queue.add(owner)
        for dep in self.dependents.get(uid, ()):
            self.queue.add(dep)  # their owner is gone now

    def _unlink(self, owner: str, dependent: str) -> None:
        deps = self.dependents.get(owner)
        if deps is not None:
            deps.discard(dependent)
            if not deps:
                del self.dependents[owner]

    async def run(self) -> None:
        rescan = asyncio.create_task(self._rescan_loop(), name="garbagecollector-rescan")
        try:
            await super().run()
        finally:
            rescan.cancel()
            await asyncio.gather(rescan, return_exceptions=True)

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_INTERVAL)
            try:
                self._sync_monitors()
            except Exception:  # noqa: BLE001 - keep collecting with the resources we have
                log.exception("garbage collector: resource rescan failed")

    # -- reconcile -------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        ref, obj = node
        deleting, finalizers = _deletion_state(obj)
        if deleting:
            if ORPHAN in finalizers:
                await self._orphan_dependents(key, ref, obj)
            elif FOREGROUND in finalizers:
                await self._delete_dependents(key, ref, obj)
            return None
        owners = _owner_refs(obj)
        if not owners:
            return None
        namespace = _meta(obj).get("namespace")
        states: dict[str, str] = {}
        for owner in owners:
            state = await self._owner_state(owner, namespace)
            if state is None:
                return 1.0  # the owner's informer is still syncing: look again shortly
            states[owner.get("uid", "")] = state
        if SOLID in states.values():
            if DANGLING in states.values():
                await self._drop_dangling(ref, obj, {u for u, s in states.items() if s == DANGLING})
            return None
        if WAITING in states.values() and self.dependents.get(key):
            policy = "Foreground"
        elif ORPHAN in finalizers:
            policy = "Orphan"
        elif FOREGROUND in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        log.info("garbage collector: deleting %s %s/%s (policy %s)", ref, namespace or "", _meta(obj)["name"], policy)
        try:
            await self.client.delete(ref, _meta(obj)["name"], namespace, propagation_policy=policy, preconditions={"uid": key})
        except Exception as exc:
            if not (is_not_found(exc) or is_conflict(exc)):
                raise
        return None

    async def _owner_state(self, owner: Obj, namespace: str | None) -> str | None:
        """solid, dangling or waiting (being deleted in the foreground); None = not known yet."""
        uid = owner.get("uid", "")
        known = self.nodes.get(uid)
        if known is not None:
            deleting, finalizers = _deletion_state(known[1])
            return WAITING if deleting and FOREGROUND in finalizers else SOLID
        ref = resource_for_kind(self.client, str(owner.get("apiVersion", "")), str(owner.get("kind", "")))
        if ref is None:
            # A kind the server does not serve (yet): upstream does not collect on that either.
            return SOLID
        monitor = self.monitors.get((ref.group, ref.plural))
        if monitor is not None and not monitor.has_synced():
            return None
        if ref.namespaced and not namespace:
            return DANGLING  # a cluster object can't be owned by a namespaced one
        try:
            live = await self.client.get(ref, str(owner.get("name", "")), namespace if ref.namespaced else None)
        except Exception as exc:
            if is_not_found(exc):
                return DANGLING
            raise
        if _meta(live).get("uid") != uid:
            return DANGLING
        deleting, finalizers = _deletion_state(live)
        return WAITING if deleting and FOREGROUND in finalizers else SOLID

    async def _drop_dangling(self, ref: ResourceRef, obj: Obj, dangling: set[str]) -> None:
        await self._rewrite_owner_refs(ref, obj, lambda refs: [r for r in refs if r.get("uid") not in dangling])

    async def _rewrite_owner_refs(self, ref: ResourceRef, obj: Obj, change: Any) -> None:
        def rewrite(live: Obj) -> bool:
            refs = _owner_refs(live)
            wanted = change(refs)
            if wanted == refs:
                return False
            if wanted:
                live["metadata"]["ownerReferences"] = wanted
            else:
                live["metadata"].pop("ownerReferences", None)
            return True

        await self._update_live(ref, obj, rewrite)

    async def _remove_finalizer(self, ref: ResourceRef, obj: Obj, finalizer: str) -> None:
        def remove(live: Obj) -> bool:
            finalizers = list(_meta(live).get("finalizers") or [])
            if finalizer not in finalizers:
                return False
            live["metadata"]["finalizers"] = [f for f in finalizers if f != finalizer]
            return True

        await self._update_live(ref, obj, remove)

    async def _update_live(self, ref: ResourceRef, obj: Obj, change: Callable[[Obj], bool]) -> None:
        """Applies ``change`` to a fresh read of ``obj`` and writes it back if it changed
        anything. An object gone (or replaced under the same name) needs nothing."""
        m = _meta(obj)
        try:
            live = await self.client.get(ref, m["name"], m.get("namespace"))
        except Exception as exc:
            if is_not_found(exc):
                return
            raise
        if _meta(live).get("uid") != m.get("uid") or not change(live):
            return
        try:
            await self.client.update(ref, live)
        except Exception as exc:
            if not is_not_found(exc):
                raise  # a conflict retries with the fresh object

    async def _orphan_dependents(self, uid: str, ref: ResourceRef, owner: Obj) -> None:
        for dep_uid in sorted(self.dependents.get(uid, ())):
            dep = self.nodes.get(dep_uid)
            if dep is not None:
                await self._rewrite_owner_refs(dep[0], dep[1], lambda refs: [r for r in refs if r.get("uid") != uid])
        await self._remove_finalizer(ref, owner, ORPHAN)

    async def _delete_dependents(self, uid: str, ref: ResourceRef, owner: Obj) -> None:
        blocking = 0
        for dep_uid in sorted(self.dependents.get(uid, ())):
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in _owner_refs(dep[1])):
                blocking += 1
            self.queue.add(dep_uid)  # decides on its own whether other owners keep it
        if blocking == 0:
            await self._remove_finalizer(ref, owner, FOREGROUND)

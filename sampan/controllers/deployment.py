"""Deployment controller: one ReplicaSet per pod template (named by its pod-template-hash),
rolled over by the RollingUpdate (maxSurge/maxUnavailable) or Recreate strategy, with
revisions, proportional scaling mid-rollout, pause, a progress deadline and history cleanup.
The strategies live in util/rollout.py; this module maps events to keys and owns the writes.
"""

from __future__ import annotations

import copy
import logging

from sampan.api.selectors import LabelSelector, SelectorError, label_selector_from_dict
from sampan.client.events import NORMAL, WARNING
from sampan.client.informer import by_controller_uid
from sampan.client.interface import DEPLOYMENTS, PODS, REPLICASETS, Obj, is_not_found, object_key
from sampan.controllers.base import Controller, controller_owner, register
from sampan.controllers.util.writes import status_patch, typed
from sampan.controllers.util import deployments as du
from sampan.controllers.util.claim import CONTROLLER_UID_INDEX, Claimer, candidates, index_for_claims
from sampan.controllers.util.conditions import get_condition, new_condition, set_condition
from sampan.controllers.util.rollout import Rollout

log = logging.getLogger(__name__)


class Fresh:
    """Read-your-writes over an informer cache: the newest of the cached object and the
    last one this controller wrote (resourceVersions are one global counter)."""

    def __init__(self) -> None:
        self._written: dict[str, Obj] = {}

    def remember(self, obj: Obj) -> Obj:
        self._written[object_key(obj)] = obj
        return obj

    def pick(self, cached: Obj) -> Obj:
        key = object_key(cached)
        written = self._written.get(key)
        if written is None:
            return cached
        if written["metadata"].get("uid") != cached["metadata"].get("uid") or _rv(cached) >= _rv(written):
            del self._written[key]
            return cached
        return written

    def forget(self, key: str) -> None:
        self._written.pop(key, None)


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


@register
class DeploymentController(Controller):
    name = "deployment"
    component = "deployment-controller"
    workers = 4

    def setup(self) -> None:
        self._selectors: dict[str, LabelSelector] = {}
        self.fresh = Fresh()
        self.deployments = self.watch(DEPLOYMENTS)
        self.sets = self.informer(REPLICASETS)
        index_for_claims(self.sets)
        self.sets.add_handler(self._rs_changed, self._rs_updated, self._rs_deleted)
        self.pods = self.informer(PODS)
        self.pods.add_indexer(CONTROLLER_UID_INDEX, by_controller_uid)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # -- event handlers ------------------------------------------------------------------
    def selector(self, d: Obj) -> LabelSelector:
        uid = d["metadata"].get("uid", "")
        gen = d["metadata"].get("generation", 0)
        cache_key = f"{uid}/{gen}"
        found = self._selectors.get(cache_key)
        if found is None:
            try:
                found = label_selector_from_dict(du.spec(d).get("selector"))
            except SelectorError:
                found = LabelSelector.match_nothing()
            self._selectors = {k: v for k, v in self._selectors.items() if not k.startswith(f"{uid}/")}
            self._selectors[cache_key] = found
        return found

    def _deployment_key(self, rs: Obj) -> str | None:
        ref = controller_owner(rs)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        key = f"{rs['metadata'].get('namespace')}/{ref.get('name')}"
        d = self.deployments.get(key)
        return key if d is not None and d["metadata"].get("uid") == ref.get("uid") else None

    def _rs_changed(self, rs: Obj) -> None:
        key = self._deployment_key(rs)
        if key is not None:
            self.queue.add(key)
        elif controller_owner(rs) is None:
            labels = rs["metadata"].get("labels")
            for d in self.deployments.list(rs["metadata"].get("namespace")):
                if self.selector(d).matches(labels):
                    self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if controller_owner(old) != controller_owner(new):
            self._rs_changed(old)
        self._rs_changed(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self.fresh.forget(object_key(rs))
        self._rs_changed(rs)

    def _pod_deleted(self, pod: Obj) -> None:
        # Recreate waits for every old pod to be gone; a deletion may be the last one.
        ref = controller_owner(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.sets.get(f"{pod['metadata'].get('namespace')}/{ref.get('name')}")
        if rs is not None:
            key = self._deployment_key(rs)
            if key is not None:
                self.queue.add(key)

    # -- reconcile -------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        cached = self.deployments.get(key)
        if cached is None:
            self.fresh.forget(key)
            return None
        d = copy.deepcopy(typed(self.fresh.pick(cached), "apps/v1", "Deployment"))
        selector = self.selector(d)
        if selector.empty:
            self.recorder.event(d, WARNING, "SelectorOverride", "This deployment is selecting all pods. A non-empty selector is required.")
            if int(d.get("status", {}).get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
                status = {**(d.get("status") or {}), "observedGeneration": d["metadata"].get("generation")}
                await self.write_status(d, status)
            return None
        found = [self.fresh.pick(typed(rs, "apps/v1", "ReplicaSet")) for rs in candidates(self.sets, d)]
        sets = await Claimer(self.client, REPLICASETS, d, DEPLOYMENTS, selector).claim(found)
        sets = [typed(rs, "apps/v1", "ReplicaSet") for rs in sets]
        rollout = Rollout(self, d, sets)
        if d["metadata"].get("deletionTimestamp"):
            await rollout.sync_status_only()
            return None
        await self.check_paused_conditions(rollout.d)
        if du.spec(d).get("paused"):
            await rollout.sync()
            return None
        if await rollout.is_scaling_event():
            await rollout.sync()
            return None
        if du.is_rolling(d):
            return await rollout.rolling()
        return await rollout.recreate(self.pod_map(d, sets, selector))

    def pod_map(self, d: Obj, sets: list[Obj], selector: LabelSelector) -> dict[str, list[Obj]]:
        """Pods of each owned ReplicaSet (terminating ones too: Recreate waits for them)."""
        result: dict[str, list[Obj]] = {}
        for rs in sets:
            uid = rs["metadata"]["uid"]
            pods = self.pods.by_index(CONTROLLER_UID_INDEX, uid)
            result[uid] = [p for p in pods if selector.matches(p["metadata"].get("labels"))]
        return result

    async def check_paused_conditions(self, d: Obj) -> None:
        if not du.has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return
        now = self.ctx.clock()
        paused = bool(du.spec(d).get("paused"))
        if paused and (cond is None or cond.get("reason") != du.PAUSED):
            new = new_condition("Progressing", "Unknown", du.PAUSED, "Deployment is paused", now, True)
        elif not paused and cond is not None and cond.get("reason") == du.PAUSED:
            new = new_condition("Progressing", "Unknown", du.RESUMED, "Deployment is resumed", now, True)
        else:
            return
        before = copy.deepcopy(status)
        set_condition(status, new)
        await self.write_status(d, status, before)

    # -- writes ------------------------------------------------------------------------------
    async def write_status(self, d: Obj, status: Obj, before: Obj | None = None) -> None:
        meta = d["metadata"]
        old = before if before is not None else (d.get("status") or {})
        try:
            written = await self.client.patch(
                DEPLOYMENTS, meta["name"], status_patch(old, status), "merge", meta.get("namespace"), subresource="status"
            )
        except Exception as exc:
            if is_not_found(exc):
                return
            raise
        self.fresh.remember(written)
        d["status"] = status
        meta["resourceVersion"] = written["metadata"].get("resourceVersion")

    async def set_revision(self, d: Obj, revision: str) -> None:
        """The Deployment carries its newest ReplicaSet's revision (shown by describe)."""
        ann = d["metadata"].setdefault("annotations", {})
        if ann.get(du.REVISION) == revision:
            return
        meta = d["metadata"]
        patch = {"metadata": {"annotations": {du.REVISION: revision}}}
        written = await self.client.patch(DEPLOYMENTS, meta["name"], patch, "merge", meta.get("namespace"))
        self.fresh.remember(written)
        ann[du.REVISION] = revision
        meta["resourceVersion"] = written["metadata"].get("resourceVersion")

    async def patch_rs(self, rs: Obj, patch: Obj) -> Obj:
        meta = rs["metadata"]
        written = await self.client.patch(REPLICASETS, meta["name"], patch, "merge", meta.get("namespace"))
        return self.fresh.remember(typed(written, "apps/v1", "ReplicaSet"))

    async def create_rs(self, rs: Obj) -> Obj:
        written = await self.client.create(REPLICASETS, rs, rs["metadata"].get("namespace"))
        return self.fresh.remember(typed(written, "apps/v1", "ReplicaSet"))

    async def get_rs(self, name: str, namespace: str) -> Obj:
        return typed(await self.client.get(REPLICASETS, name, namespace), "apps/v1", "ReplicaSet")

    async def delete_rs(self, rs: Obj) -> None:
        meta = rs["metadata"]
        try:
            await self.client.delete(REPLICASETS, meta["name"], meta.get("namespace"))
        except Exception as exc:
            if not is_not_found(exc):
                raise

    def scaled_event(self, d: Obj, rs: Obj, old: int, new: int) -> None:
        direction = "up" if new > old else "down"
        self.recorder.event(d, NORMAL, "ScalingReplicaSet", f"Scaled {direction} replica set {rs['metadata']['name']} from {old} to {new}")


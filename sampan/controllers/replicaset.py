"""ReplicaSet controller: keeps ``spec.replicas`` pods matching the selector alive.

Creations go in slow-start batches (1, 2, 4, ...) so a broken template fails fast; the
expectations stop a second round of creates or deletes until the informer has seen the
first; scale-down removes the least valuable pods first (unscheduled, pending, not ready...).
"""

from __future__ import annotations

import asyncio
import logging

from sampan.api.selectors import LabelSelector
from sampan.client.expectations import UIDTrackingExpectations
from sampan.client.informer import by_controller_uid
from sampan.client.interface import PODS, REPLICASETS, Obj, is_not_found, object_key
from sampan.controllers.base import Controller, controller_owner, register
from sampan.controllers.util.claim import CONTROLLER_UID_INDEX, Claimer, SelectorCache, candidates, index_for_claims
from sampan.controllers.util.conditions import new_condition, remove_condition, set_condition
from sampan.controllers.util.pods import (
    is_active,
    is_available,
    is_ready,
    pod_from_template,
    seconds_until_available,
)
from sampan.controllers.util.podcontrol import PodControl
from sampan.controllers.util.ranking import pods_to_delete
from sampan.controllers.util.writes import error_message, slow_start_batch, status_patch, typed

log = logging.getLogger(__name__)

BURST_REPLICAS = 500


@register
class ReplicaSetController(Controller):
    name = "replicaset"
    component = "replicaset-controller"
    workers = 4

    def setup(self) -> None:
        self.expectations = UIDTrackingExpectations()
        self.pods_ctl = PodControl(self.client, self.recorder, self.expectations)
        self._selectors = SelectorCache()
        self.sets = self.watch(REPLICASETS)
        self.pods = self.informer(PODS)
        index_for_claims(self.pods)
        self.sets.add_indexer(CONTROLLER_UID_INDEX, by_controller_uid)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- event handlers: map pods to their ReplicaSets --------------------------------
    def selector(self, rs: Obj) -> LabelSelector:
        return self._selectors.get(rs)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_owner(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        key = f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
        rs = self.sets.get(key)
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _enqueue_matching(self, pod: Obj) -> None:
        labels = pod["metadata"].get("labels")
        for rs in self.sets.list(pod["metadata"].get("namespace")):
            if self.selector(rs).matches(labels):
                self.enqueue(rs)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        if controller_owner(pod) is not None:
            key = self._owner_key(pod)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if new["metadata"].get("deletionTimestamp"):
            # A graceful delete started: count it now so a replacement is made without waiting.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_owner(old), controller_owner(new)
        if old_ref != new_ref and old_ref is not None:
            old_key = self._owner_key(old)
            if old_key is not None:
                self.queue.add(old_key)
        if new_ref is not None:
            key = self._owner_key(new)
            if key is not None:
                self.queue.add(key)
                rs = self.sets.get(key)
                min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready and not is_ready(old) and is_ready(new):
                    self.queue.add_after(key, min_ready + 0.5)
            return
        if labels_changed or old_ref != new_ref:
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            return
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        cached = self.sets.get(key)
        if cached is None:
            self.expectations.delete(key)
            return None
        rs = typed(cached, "apps/v1", "ReplicaSet")
        needs_sync = self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp")
        selector = self.selector(rs)
        active = [p for p in candidates(self.pods, rs) if is_active(p)]
        pods = await Claimer(self.client, PODS, rs, REPLICASETS, selector).claim(active)
        manage_error: BaseException | None = None
        diff = len(pods) - int((rs.get("spec") or {}).get("replicas", 1))
        if needs_sync:
            try:
                await self.manage(key, rs, pods, diff)
            except Exception as exc:  # noqa: BLE001 - status records it, then the sync is retried
                manage_error = exc
        await self.update_status(rs, pods, manage_error, diff)
        if manage_error is not None:
            raise manage_error
        return self._next_available_check(rs, pods)

    def _next_available_check(self, rs: Obj, pods: list[Obj]) -> float | None:
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if not min_ready:
            return None
        now = self.ctx.clock()
        waits = [w for p in pods if (w := seconds_until_available(p, min_ready, now)) is not None]
        return min(waits) + 0.1 if waits else None

    async def manage(self, key: str, rs: Obj, pods: list[Obj], diff: int) -> None:
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            _, attempted, error = await slow_start_batch(count, 1, lambda: self.pods_ctl.create(key, rs, self._new_pod(rs)))
            skipped = count - attempted
            if skipped:
                # Never attempted: nothing will be observed for them.
                self.expectations.lower_expectations(key, skipped, 0)
            if error is not None:
                raise error
        elif diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = pods_to_delete(pods, self._related_pods(rs, pods), count, self.ctx.clock())
            self.expectations.expect_deletions(key, [object_key(p) for p in victims])
            results = await asyncio.gather(*(self.pods_ctl.delete(key, rs, p) for p in victims), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]

    @staticmethod
    def _new_pod(rs: Obj) -> Obj:
        return pod_from_template((rs.get("spec") or {}).get("template"), rs)

    def _related_pods(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """Active pods of every ReplicaSet sharing this one's controller (a Deployment's sets)."""
        owner = controller_owner(rs)
        if owner is None:
            return pods
        related: list[Obj] = []
        for sibling in self.sets.by_index(CONTROLLER_UID_INDEX, owner["uid"]):
            related.extend(p for p in self.pods.by_index(CONTROLLER_UID_INDEX, sibling["metadata"]["uid"]) if is_active(p))
        return related

    async def update_status(self, rs: Obj, pods: list[Obj], error: BaseException | None, diff: int) -> None:
        spec = rs.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = self.ctx.clock()
        old: Obj = rs.get("status") or {}
        status: Obj = {k: v for k, v in old.items() if k == "conditions"}
        status["replicas"] = len(pods)
        status["fullyLabeledReplicas"] = sum(
            1 for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())
        )
        status["readyReplicas"] = sum(1 for p in pods if is_ready(p))
        status["availableReplicas"] = sum(1 for p in pods if is_available(p, min_ready, now))
        status["observedGeneration"] = rs["metadata"].get("generation", 0)
        if error is not None and diff != 0:
            reason = "FailedCreate" if diff < 0 else "FailedDelete"
            set_condition(status, new_condition("ReplicaFailure", "True", reason, error_message(error), now))
        elif error is None:
            remove_condition(status, "ReplicaFailure")
        if _same_status(old, status):
            return
        meta = rs["metadata"]
        try:
            await self.client.patch(REPLICASETS, meta["name"], status_patch(old, status), "merge", meta.get("namespace"), subresource="status")
        except Exception as exc:
            if not is_not_found(exc):
                raise


def _same_status(old: Obj, new: Obj) -> bool:
    keys = set(old) | set(new)
    zero_ok = {"replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"}
    return all(old.get(k, 0 if k in zero_ok else None) == new.get(k, 0 if k in zero_ok else None) for k in keys)

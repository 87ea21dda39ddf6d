"""Pod garbage collection, every ``podgc_period`` seconds like upstream's gcCheckPeriod:

- finished pods beyond ``terminated_pod_gc_threshold`` (default 12500; 0 turns it off),
  oldest first;
- pods bound to a node that no longer exists (seen missing for the quarantine time and
  confirmed with a live GET): marked Failed with a DisruptionTarget condition, then
  force-deleted;
- pods being deleted that were never scheduled: force-deleted, as no kubelet will.
"""

from __future__ import annotations

import asyncio
import logging

from sampan.client.interface import NODES, PODS, Obj, is_not_found
from sampan.controllers.base import Controller, register
from sampan.controllers.util.conditions import rfc3339

log = logging.getLogger(__name__)

KEY = "podgc"
PERIOD = 20.0
QUARANTINE = 40.0
THRESHOLD = 12500


def _terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@register
class PodGCController(Controller):
    name = "podgc"
    component = "pod-garbage-collector"

    def setup(self) -> None:
        extra = self.ctx.options.extra
        self.period = float(extra.get("podgc_period", PERIOD))
        self.quarantine = float(extra.get("podgc_quarantine", QUARANTINE))
        self.threshold = int(extra.get("terminated_pod_gc_threshold", THRESHOLD))
        self.pods = self.informer(PODS)
        self.nodes = self.informer(NODES)
        self.nodes.add_handler(on_delete=lambda _node: self.queue.add(KEY))
        self._missing_since: dict[str, float] = {}
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        if not self.pods.has_synced() or not self.nodes.has_synced():
            return 1.0
        pods = self.pods.list()
        await self._gc_terminated(pods)
        await self._gc_orphaned(pods)
        await self._gc_unscheduled_terminating(pods)
        return self.period

    async def _gc_terminated(self, pods: list[Obj]) -> None:
        if self.threshold <= 0:
            return
        done = [p for p in pods if _terminated(p)]
        excess = len(done) - self.threshold
        if excess <= 0:
            return
        # Evicted pods go first, then the oldest.
        done.sort(key=lambda p: ((p.get("status") or {}).get("reason") != "Evicted", p["metadata"].get("creationTimestamp", "")))
        log.info("podgc: deleting %d terminated pods over the threshold of %d", excess, self.threshold)
        await asyncio.gather(*(self._force_delete(p) for p in done[:excess]))

    async def _gc_orphaned(self, pods: list[Obj]) -> None:
        now = self.ctx.clock()
        bound = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None, ""}
        missing = {n for n in bound if self.nodes.get_by_name(str(n)) is None}
        for node in list(self._missing_since):
            if node not in missing:
                del self._missing_since[node]
        for node in missing:
            since = self._missing_since.setdefault(node, now)
            if now - since < self.quarantine:
                continue
            try:
                await self.client.get(NODES, node)
                continue  # the cache was behind: the node exists
            except Exception as exc:
                if not is_not_found(exc):
                    raise
            orphans = [p for p in pods if (p.get("spec") or {}).get("nodeName") == node]
            log.info("podgc: node %s is gone, deleting its %d pods", node, len(orphans))
            await asyncio.gather(*(self._fail_and_delete(p) for p in orphans))

    async def _gc_unscheduled_terminating(self, pods: list[Obj]) -> None:
        stuck = [p for p in pods if p["metadata"].get("deletionTimestamp") and not (p.get("spec") or {}).get("nodeName")]
        await asyncio.gather(*(self._force_delete(p) for p in stuck))

    async def _fail_and_delete(self, pod: Obj) -> None:
        status = pod.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        conditions.append({
            "type": "DisruptionTarget",
            "status": "True",
            "lastTransitionTime": rfc3339(self.ctx.clock()),
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
        })
        patch: Obj = {"conditions": conditions}
        if not _terminated(pod):
            patch["phase"] = "Failed"
        m = pod["metadata"]
        try:
            await self.client.patch(PODS, m["name"], {"status": patch}, "merge", m["namespace"], subresource="status")
        except Exception as exc:
            if is_not_found(exc):
                return
            raise
        await self._force_delete(pod)

    async def _force_delete(self, pod: Obj) -> None:
        m = pod["metadata"]
        try:
            await self.client.delete(PODS, m["name"], m["namespace"], grace_period_seconds=0, preconditions={"uid": m["uid"]})
        except Exception as exc:
            if not is_not_found(exc):
                raise

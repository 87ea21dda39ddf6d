"""Taint-based eviction: pods on a node with NoExecute taints they do not tolerate are deleted
at once; pods that tolerate them for ``tolerationSeconds`` are deleted when that runs out
(counted from when this controller first saw them tainted, as upstream); pods that tolerate
them for ever stay. Deleted pods first get the DisruptionTarget condition, as upstream.

Pods get default tolerations for ``node.kubernetes.io/not-ready`` and ``unreachable`` (300 s)
when they are created (see the pod strategy), so an unreachable node's pods go after 5 minutes.
"""

from __future__ import annotations

from sampan.client.events import NORMAL
from sampan.client.informer import by_node_name
from sampan.client.interface import NODES, PODS, Obj, is_conflict, is_not_found, object_key, split_key
from sampan.controllers.base import Controller, register
from sampan.controllers.util import taints as tt
from sampan.controllers.util.conditions import rfc3339

NODE_NAME_INDEX = "nodeName"
REASON = "TaintManagerEviction"


@register
class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    component = "taint-eviction-controller"
    workers = 4

    def setup(self) -> None:
        # Pod key -> (pod uid, when its eviction clock started).
        self.scheduled: dict[str, tuple[str, float]] = {}
        self.pods = self.watch(PODS)
        self.pods.add_indexer(NODE_NAME_INDEX, by_node_name)
        self.nodes = self.informer(NODES)
        self.nodes.add_handler(
            on_add=lambda node: self._node_changed(None, node),
            on_update=self._node_changed,
            on_delete=lambda node: self._node_changed(node, None),
        )

    def _node_changed(self, old: Obj | None, new: Obj | None) -> None:
        before = tt.node_taints(old, tt.NO_EXECUTE)
        after = tt.node_taints(new, tt.NO_EXECUTE)
        if _taint_ids(before) == _taint_ids(after):
            return
        name = (new or old or {}).get("metadata", {}).get("name", "")
        for key in self.pods.cache.index_keys(NODE_NAME_INDEX, name):
            self.queue.add(key)

    def _cancel(self, key: str, pod: Obj | None) -> None:
        if self.scheduled.pop(key, None) is not None and pod is not None:
            self.recorder.event(pod, NORMAL, REASON, f"Cancelling deletion of Pod {key}")

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        node_name = ((pod or {}).get("spec") or {}).get("nodeName")
        if pod is None or not node_name or pod["metadata"].get("deletionTimestamp"):
            self.scheduled.pop(key, None)
            return None
        taints = tt.node_taints(self.nodes.get(node_name), tt.NO_EXECUTE)
        if not taints:
            self._cancel(key, pod)
            return None
        used = tt.matching_tolerations(tt.pod_tolerations(pod), taints)
        now = self.ctx.clock()
        if used is None:
            await self._evict(key, pod, now)
            return None
        seconds = tt.min_toleration_seconds(used)
        if seconds is None:  # tolerated for ever
            self._cancel(key, pod)
            return None
        uid = pod["metadata"].get("uid", "")
        scheduled = self.scheduled.get(key)
        if scheduled is None or scheduled[0] != uid:
            scheduled = self.scheduled[key] = (uid, now)
        remaining = scheduled[1] + seconds - now
        if remaining > 0:
            return remaining
        await self._evict(key, pod, now)
        return None

    async def _evict(self, key: str, pod: Obj, now: float) -> None:
        self.scheduled.pop(key, None)
        self.recorder.event(pod, NORMAL, REASON, f"Marking for deletion Pod {key}")
        ns, name = split_key(key)
        uid = pod["metadata"].get("uid", "")
        old = (pod.get("status") or {}).get("conditions") or []
        conditions = [c for c in old if c.get("type") != "DisruptionTarget"]
        conditions.append({
            "type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": rfc3339(now),
            "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint",
        })
        patch = {"metadata": {"uid": uid, "resourceVersion": pod["metadata"]["resourceVersion"]},
                 "status": {"conditions": conditions}}
        try:
            await self.client.patch(PODS, name, patch, "merge", ns, subresource="status")
            await self.client.delete(PODS, name, ns, preconditions={"uid": uid})
        except Exception as exc:
            if is_not_found(exc):
                return
            if is_conflict(exc):
                self.queue.add(object_key(pod))  # changed under us: decide again on the fresh pod
                return
            raise


def _taint_ids(taints: list[Obj]) -> set[tuple[str, str, str]]:
    return {(t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in taints}

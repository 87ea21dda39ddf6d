"""TaintToleration: NoSchedule/NoExecute taints a pod does not tolerate rule the node
out; untolerated PreferNoSchedule taints lower its score."""

from __future__ import annotations

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import (
    SKIPPED, CycleState, Plugin, Status, default_normalize, plugin, unresolvable,
)
from sampan.scheduler.helpers import NO_EXECUTE, NO_SCHEDULE, PREFER_NO_SCHEDULE, first_untolerated, tolerates
from sampan.scheduler.types import NodeInfo, PodInfo

_FILTER_EFFECTS = (NO_SCHEDULE, NO_EXECUTE)


@plugin
class TaintToleration(Plugin):
    name = "TaintToleration"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if snapshot.tainted_nodes else SKIPPED

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        taint = first_untolerated(node.taints, pod.tolerations, _FILTER_EFFECTS)
        if taint is None:
            return None
        return unresolvable(f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}")

    def filter_many(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        check = self.filter
        return [n for n in nodes if not n.taints or check(state, pod, n) is None]

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        if not snapshot.tainted_nodes or not any(
            t.get("effect") == PREFER_NO_SCHEDULE for n in nodes if n.taints for t in n.taints
        ):
            return SKIPPED
        state[self.name] = [t for t in pod.tolerations if (t.get("effect") or PREFER_NO_SCHEDULE) == PREFER_NO_SCHEDULE]
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        tolerations = state[self.name]
        count = 0
        for taint in node.taints:
            if taint.get("effect") == PREFER_NO_SCHEDULE and not any(tolerates(t, taint) for t in tolerations):
                count += 1
        return count

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores, reverse=True)

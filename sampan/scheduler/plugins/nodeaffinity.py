"""NodeAffinity: spec.nodeSelector and required node affinity filter; preferred node
affinity terms add their weights to the score."""

from __future__ import annotations

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import (
    SKIPPED, CycleState, Plugin, Status, default_normalize, plugin, unresolvable,
)
from sampan.scheduler.helpers import RequiredNodeAffinity, preferred_node_terms
from sampan.scheduler.types import NodeInfo, PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"


@plugin
class NodeAffinity(Plugin):
    name = "NodeAffinity"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        required = RequiredNodeAffinity(pod.spec)
        if required.empty:
            return SKIPPED
        state[self.name] = required
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        required: RequiredNodeAffinity = state[self.name]
        return None if required.matches(node.labels, node.name) else unresolvable(REASON)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        terms = preferred_node_terms(pod.spec)
        if not terms:
            return SKIPPED
        state[self.name + "/preferred"] = terms
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(w for w, term in state[self.name + "/preferred"] if term.matches(node.labels, node.name))

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores)

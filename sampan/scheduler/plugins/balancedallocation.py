"""NodeResourcesBalancedAllocation: prefer nodes where cpu and memory would be used in
similar proportions after placing the pod."""

from __future__ import annotations

from sampan.scheduler.framework import MAX_NODE_SCORE, CycleState, Plugin, plugin
from sampan.scheduler.types import NodeInfo, PodInfo, memoized


@plugin
class NodeResourcesBalancedAllocation(Plugin):
    name = "NodeResourcesBalancedAllocation"

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        alloc, used, req = node.allocatable, node.requested, pod.requests
        if alloc.cpu <= 0 or alloc.memory <= 0:
            return 0
        fc = min((used.cpu + req.cpu) / alloc.cpu, 1.0)
        fm = min((used.memory + req.memory) / alloc.memory, 1.0)
        # The standard deviation of two fractions is half their distance.
        std = abs(fc - fm) / 2
        return int((1 - std) * MAX_NODE_SCORE)

    def score_key(self, state: CycleState, pod: PodInfo) -> tuple[object, ...]:
        return (self.name, pod.requests.cpu, pod.requests.memory)

    def score_many(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        return memoized(nodes, self.score_key(state, pod), lambda n: self.score(state, pod, n))

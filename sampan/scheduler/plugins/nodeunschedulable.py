"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take only pods that tolerate
the node.kubernetes.io/unschedulable:NoSchedule taint."""

from __future__ import annotations

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import SKIPPED, CycleState, Plugin, Status, plugin, unresolvable
from sampan.scheduler.helpers import tolerated
from sampan.scheduler.types import NodeInfo, PodInfo

REASON = "node(s) were unschedulable"
TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


@plugin
class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if not snapshot.unschedulable_nodes or (pod.tolerations and tolerated(TAINT, pod.tolerations)):
            return SKIPPED
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return unresolvable(REASON) if node.unschedulable else None

    def filter_many(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        return [n for n in nodes if not n.unschedulable]

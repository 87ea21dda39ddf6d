"""NodeName: a pod that names its node fits only there."""

from __future__ import annotations

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import SKIPPED, CycleState, Plugin, Status, plugin, unresolvable
from sampan.scheduler.types import NodeInfo, PodInfo

REASON = "node(s) didn't match the requested node name"


@plugin
class NodeName(Plugin):
    name = "NodeName"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if pod.node_name else SKIPPED

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if node.name == pod.node_name else unresolvable(REASON)

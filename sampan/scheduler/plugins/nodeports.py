"""NodePorts: a pod's hostPorts must be free on the node (same protocol and port, and
the same IP or either side on 0.0.0.0)."""

from __future__ import annotations

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import SKIPPED, CycleState, Plugin, Status, plugin, unschedulable
from sampan.scheduler.types import NodeInfo, PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"
ANY_IP = "0.0.0.0"


def conflicts(wanted: list[tuple[str, str, int]], used: dict[tuple[str, str, int], int]) -> bool:
    if not used:
        return False
    for ip, proto, port in wanted:
        if (ip, proto, port) in used:
            return True
        for uip, uproto, uport in used:
            if uport == port and uproto == proto and (ip == ANY_IP or uip == ANY_IP):
                return True
    return False


@plugin
class NodePorts(Plugin):
    name = "NodePorts"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if pod.host_ports else SKIPPED

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return unschedulable(REASON) if conflicts(pod.host_ports, node.used_ports) else None

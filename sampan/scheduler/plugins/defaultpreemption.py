"""DefaultPreemption: when a pod fits nowhere, find one node where removing lower-priority
pods would make it fit, evict the fewest and least important of them, and nominate the
node for the pod (status.nominatedNodeName) so it is kept free while the victims go.

Choosing is pure (over the snapshot); the deletes run after the cycle as the result's
``action``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sampan.client.events import NORMAL
from sampan.client.interface import PODS, is_not_found
from sampan.scheduler.cache import Snapshot
from sampan.scheduler.core import Diagnosis
from sampan.scheduler.framework import (
    UNSCHEDULABLE, CycleState, Framework, Plugin, PostFilterResult, Status, plugin, unresolvable, unschedulable,
)
from sampan.scheduler.types import NodeInfo, PodInfo

log = logging.getLogger(__name__)

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
MIN_CANDIDATES = 100
CANDIDATE_PERCENTAGE = 10


def _start_time(pod: PodInfo) -> str:
    return (pod.pod.get("status") or {}).get("startTime") or (pod.pod.get("metadata") or {}).get(
        "creationTimestamp"
    ) or ""


class Candidate:
    __slots__ = ("node", "victims")

    def __init__(self, node: str, victims: list[PodInfo]) -> None:
        self.node, self.victims = node, victims

    def rank(self) -> tuple[int, int, int]:
        """Lower is better: the most important victim, then the sum of priorities, then how many."""
        prios = [v.priority for v in self.victims]
        return (max(prios, default=-(2**31)), sum(prios), len(prios))


@plugin
class DefaultPreemption(Plugin):
    name = "DefaultPreemption"

    def post_filter(
        self, state: CycleState, pod: PodInfo, snapshot: Snapshot, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        why = self._not_eligible(pod, snapshot)
        if why:
            return None, unschedulable(f"preemption: {why}")
        framework: Framework | None = self.handle.framework
        assert framework is not None
        # A fresh PreFilter state: the cycle's may have been cut short by a failing PreFilter.
        fresh = CycleState()
        _status, filters = framework.run_pre_filter(fresh, pod, snapshot)
        statuses: dict[str, Status] = {}
        candidates: list[Candidate] = []
        wanted = max(len(snapshot.nodes) * CANDIDATE_PERCENTAGE // 100, MIN_CANDIDATES)
        for node in snapshot.nodes:
            status = diagnosis.node_statuses.get(node.name)
            if status is None or status.code != UNSCHEDULABLE:
                statuses[node.name] = unresolvable(NOT_HELPFUL)
                continue
            victims, status = self._select_victims(filters, fresh, pod, node)
            if status is not None:
                statuses[node.name] = status
                continue
            candidates.append(Candidate(node.name, victims))
            if len(candidates) >= wanted:
                break
        if not candidates:
            fit = Diagnosis(len(snapshot.nodes), statuses)
            return PostFilterResult(), unschedulable("preemption: " + fit.message())
        best = min(candidates, key=Candidate.rank)
        self.handle.nominated[pod.key] = (pod, best.node)
        return PostFilterResult(best.node, self._evict(pod, best)), Status()

    def _not_eligible(self, pod: PodInfo, snapshot: Snapshot) -> str:
        if pod.spec.get("preemptionPolicy") == "Never":
            return "not eligible due to preemptionPolicy=Never."
        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        node = snapshot.get(nominated) if nominated else None
        if node is not None and any(p.terminating and p.priority < pod.priority for p in node.pods.values()):
            return "not eligible due to a terminating pod on the nominated node."
        return ""

    @staticmethod
    def _select_victims(
        filters: list[Callable], state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> tuple[list[PodInfo], Status | None]:
        """The fewest lower-priority pods whose removal lets the pod fit (dry run on a copy)."""
        lower = [p for p in node.pods.values() if p.priority < pod.priority]
        if not lower:
            return [], unresolvable(NO_VICTIMS)
        trial = node.clone()
        for p in lower:
            trial.remove_pod(p)
        status = Framework.run_filters(filters, state, pod, trial)
        if status is not None:
            return [], status
        # Give back the most important pods first; whatever no longer fits is a victim.
        lower.sort(key=lambda p: (-p.priority, _start_time(p)))
        victims = []
        for p in lower:
            trial.add_pod(p)
            if Framework.run_filters(filters, state, pod, trial) is not None:
                trial.remove_pod(p)
                victims.append(p)
        return victims, None

    def _evict(self, pod: PodInfo, candidate: Candidate) -> Callable[[], Any]:
        client, recorder = self.handle.client, self.handle.recorder
        nominated = self.handle.nominated

        async def run() -> None:
            for victim in candidate.victims:
                condition = {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": "default-scheduler: preempting to accommodate a higher priority pod",
                }
                try:
                    await client.patch(
                        PODS, victim.name, {"status": {"conditions": [condition]}}, "strategic",
                        namespace=victim.namespace, subresource="status",
                    )
                    await client.delete(PODS, victim.name, namespace=victim.namespace)
                except Exception as exc:
                    if not is_not_found(exc):
                        raise
                recorder.event(
                    victim.pod, NORMAL, "Preempted", f"Preempted by pod {pod.uid} on node {candidate.node}"
                )
            # Lower-priority pods nominated to the same node lose their claim.
            for key, (other, node) in list(nominated.items()):
                if node == candidate.node and other.priority < pod.priority:
                    del nominated[key]
                    try:
                        await client.patch(
                            PODS, other.name, {"status": {"nominatedNodeName": None}}, "merge",
                            namespace=other.namespace, subresource="status",
                        )
                    except Exception as exc:  # noqa: BLE001 - it is retried and re-nominated anyway
                        log.info("could not clear nominatedNodeName of %s: %s", key, exc)

        return run

"""The pure scheduling core: filter nodes, score the feasible ones, pick the best.

No I/O: it reads a snapshot and a pod and returns a node name or a diagnosis. Like
upstream it stops filtering once it has found enough feasible nodes (an adaptive
percentage of the cluster, at least 100), starting each cycle where the last stopped so
every node gets its turn, and breaks score ties at random.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import compress

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import (
    ERROR, CycleState, Framework, Status,
)
from sampan.scheduler.types import NodeInfo, PodInfo

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
# Nodes filtered per call at least (fewer calls when most nodes pass).
CHUNK = 64
DEFAULT_PERCENTAGE_BASE = 50


def num_feasible_nodes_to_find(num_all: int, percentage: int = 0) -> int:
    """How many feasible nodes are enough (upstream's adaptive percentageOfNodesToScore)."""
    if num_all < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all
    if percentage <= 0:
        percentage = max(DEFAULT_PERCENTAGE_BASE - num_all // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    if percentage >= 100:
        return num_all
    return max(num_all * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass
class Diagnosis:
    """Why a pod fits nowhere: each rejecting node's status, or a PreFilter's message."""

    num_all_nodes: int = 0
    node_statuses: dict[str, Status] = field(default_factory=dict)
    pre_filter_message: str = ""
    post_filter_message: str = ""
    error: str = ""

    @property
    def unschedulable_plugins(self) -> set[str]:
        return {s.plugin for s in self.node_statuses.values() if s.plugin}

    def message(self) -> str:
        """Upstream's FitError text: "0/3 nodes are available: 1 Insufficient cpu, ... ." """
        if self.error:
            return self.error
        text = f"0/{self.num_all_nodes} nodes are available:"
        if self.pre_filter_message:
            text += f" {self.pre_filter_message}."
        else:
            counts: dict[str, int] = {}
            for status in self.node_statuses.values():
                for reason in status.reasons:
                    counts[reason] = counts.get(reason, 0) + 1
            if counts:
                text += " " + ", ".join(sorted(f"{n} {r}" for r, n in counts.items())) + "."
        if self.post_filter_message:
            text += f" {self.post_filter_message}"
        return text


@dataclass
class ScheduleResult:
    node: str = ""
    evaluated: int = 0
    feasible: int = 0
    diagnosis: Diagnosis | None = None


class Algorithm:
    def __init__(self, framework: Framework, percentage: int = 0, rng: random.Random | None = None) -> None:
        self.framework = framework
        self.percentage = percentage
        self.rng = rng or random.Random()
        self.next_start = 0
        # pod key -> (pod, node) for pods waiting on a node for their preemption victims to go.
        self.nominated: dict[str, tuple[PodInfo, str]] = {}

    def schedule(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> ScheduleResult:
        nodes = snapshot.nodes
        diagnosis = Diagnosis(len(nodes))
        if not nodes:
            return ScheduleResult(diagnosis=diagnosis)
        status, filters = self.framework.run_pre_filter(state, pod, snapshot)
        if status is not None:
            if status.code == ERROR:
                diagnosis.error = f"running PreFilter plugin {status.plugin!r}: {status.message}"
            else:
                # Every node shares the PreFilter's verdict (preemption reads it per node).
                diagnosis.pre_filter_message = status.message
                diagnosis.node_statuses = {n.name: status for n in nodes}
            return ScheduleResult(diagnosis=diagnosis)
        nominated_node = ((pod.pod.get("status") or {}).get("nominatedNodeName")) or ""
        if nominated_node:
            node = snapshot.get(nominated_node)
            if node is not None and self._filter_node(filters, state, pod, node) is None:
                return ScheduleResult(nominated_node, 1, 1)
        feasible, processed = self._find_feasible(filters, state, pod, nodes, diagnosis)
        if not feasible:
            return ScheduleResult(evaluated=processed, diagnosis=diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, processed, 1)
        scores = self.framework.run_score(state, pod, snapshot, feasible)
        return ScheduleResult(self._select(feasible, scores), processed, len(feasible))

    def _others_nominated(self, pod: PodInfo) -> dict[str, list[PodInfo]]:
        by_node: dict[str, list[PodInfo]] = {}
        for key, (other, node) in self.nominated.items():
            if key != pod.key and other.priority >= pod.priority:
                by_node.setdefault(node, []).append(other)
        return by_node

    def _filter_node(self, filters: list[Callable], state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        waiting = self._others_nominated(pod).get(node.name) if self.nominated else None
        if waiting:
            node = node.clone()
            for other in waiting:
                node.add_pod(other)
        return Framework.run_filters(filters, state, pod, node)

    def _find_feasible(
        self, filters: list[Callable], state: CycleState, pod: PodInfo, nodes: list[NodeInfo], diagnosis: Diagnosis
    ) -> tuple[list[NodeInfo], int]:
        total = len(nodes)
        want = num_feasible_nodes_to_find(total, self.percentage)
        start = self.next_start % total
        nominated = self._others_nominated(pod) if self.nominated else {}
        if nominated:
            rotated = nodes[start:] + nodes[:start]
            feasible, processed = self._filter_each(filters, state, pod, rotated, want, nominated, diagnosis)
        else:
            feasible, processed = self._filter_chunks(filters, state, pod, nodes, start, want)
            if not feasible:
                # Nothing fits: go over every node again, one by one, to learn why.
                self._filter_each(filters, state, pod, nodes[start:] + nodes[:start], want, {}, diagnosis)
        self.next_start = (start + processed) % total
        return feasible, processed

    @staticmethod
    def _filter_chunks(
        filters: list[Callable], state: CycleState, pod: PodInfo, nodes: list[NodeInfo], start: int, want: int
    ) -> tuple[list[NodeInfo], int]:
        """The hot path: each plugin filters a whole chunk of nodes in one call. Nodes are
        taken in order from ``start``, wrapping around."""
        passes = [getattr(fn.__self__, "filter_many", None) or _one_by_one(fn) for fn in filters]
        total = len(nodes)
        feasible: list[NodeInfo] = []
        pos = 0
        while pos < total and len(feasible) < want:
            size = min(max(want - len(feasible), CHUNK), total - pos)
            begin = (start + pos) % total
            chunk = nodes[begin : begin + size]
            if len(chunk) < size:
                chunk += nodes[: size - len(chunk)]
            pos += size
            for keep in passes:
                chunk = keep(state, pod, chunk)
                if not chunk:
                    break
            feasible += chunk
        if len(feasible) > want:
            # Found more than needed in the last chunk: stop where upstream would have.
            feasible = feasible[:want]
            last = nodes.index(feasible[-1])
            pos = (last - start) % total + 1
        return feasible, pos

    @staticmethod
    def _filter_each(
        filters: list[Callable],
        state: CycleState,
        pod: PodInfo,
        rotated: list[NodeInfo],
        want: int,
        nominated: dict[str, list[PodInfo]],
        diagnosis: Diagnosis,
    ) -> tuple[list[NodeInfo], int]:
        """Node by node, recording why each rejected node failed."""
        feasible: list[NodeInfo] = []
        statuses = diagnosis.node_statuses
        processed = 0
        for node in rotated:
            processed += 1
            waiting = nominated.get(node.name) if nominated else None
            if waiting:
                # Higher-priority pods waiting for this node count as if already there.
                node_view = node.clone()
                for other in waiting:
                    node_view.add_pod(other)
                status = Framework.run_filters(filters, state, pod, node_view)
            else:
                status = Framework.run_filters(filters, state, pod, node)
            if status is None:
                feasible.append(node)
                if len(feasible) >= want:
                    break
            else:
                statuses[node.name] = status
        return feasible, processed

    def _select(self, nodes: list[NodeInfo], scores: list[int]) -> str:
        """The highest score; ties broken uniformly at random."""
        best = max(scores)
        ties = scores.count(best)
        if ties == 1:
            return nodes[scores.index(best)].name
        tied = list(compress(nodes, map(best.__eq__, scores)))  # in C: no Python loop
        return tied[self.rng.randrange(ties)].name


def _one_by_one(fn: Callable) -> Callable:
    def keep(state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        return [n for n in nodes if fn(state, pod, n) is None]

    return keep

"""InterPodAffinity: place pods near (affinity) or away from (anti-affinity) other pods
within a topology domain (a node, a zone, any node label).

Filter: the pod's required affinity terms must each find a matching pod in the node's
domain (unless no pod matches anywhere and the pod matches its own terms: the first of
a group), its required anti-affinity terms must find none, and no pod already placed may
have a required anti-affinity term against it in that domain. Score: preferred terms of
the pod and of the placed pods, summed per domain, scaled to 0..100.
"""

from __future__ import annotations

from typing import Any

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import (
    MAX_NODE_SCORE, SKIPPED, CycleState, Plugin, Status, plugin, unresolvable, unschedulable,
)
from sampan.scheduler.types import AffinityTerm, NodeInfo, PodInfo

REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

Pair = tuple[str, str]


def _add(counts: dict[Pair, int], key: str, node: NodeInfo, delta: int) -> None:
    value = node.labels.get(key)
    if value is not None:
        pair = (key, value)
        counts[pair] = counts.get(pair, 0) + delta


class _FilterState:
    __slots__ = ("existing_anti", "affinity", "anti", "affinity_terms", "anti_terms", "self_match")

    def __init__(self) -> None:
        self.existing_anti: dict[Pair, int] = {}
        self.affinity: dict[Pair, int] = {}
        self.anti: dict[Pair, int] = {}
        self.affinity_terms: list[AffinityTerm] = []
        self.anti_terms: list[AffinityTerm] = []
        self.self_match = False


@plugin
class InterPodAffinity(Plugin):
    name = "InterPodAffinity"

    def __init__(self, args: dict[str, Any], handle: Any) -> None:
        super().__init__(args, handle)
        # How much an existing pod's *required* affinity to the incoming pod counts in scoring.
        self.hard_weight = int(args.get("hardPodAffinityWeight", 1))

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if not pod.required_affinity and not pod.required_anti_affinity and not snapshot.anti_affinity_pod_count:
            return SKIPPED
        ns_labels = snapshot.namespace_labels
        fs = _FilterState()
        fs.affinity_terms, fs.anti_terms = pod.required_affinity, pod.required_anti_affinity
        for node in snapshot.nodes_with_anti_affinity_pods():
            for existing in node.anti_affinity_pods.values():
                for term in existing.required_anti_affinity:
                    if term.matches(pod, ns_labels):
                        _add(fs.existing_anti, term.topology_key, node, 1)
        if fs.affinity_terms or fs.anti_terms:
            for node in snapshot.nodes:
                for existing in node.pods.values():
                    if fs.affinity_terms and all(t.matches(existing, ns_labels) for t in fs.affinity_terms):
                        for t in fs.affinity_terms:
                            _add(fs.affinity, t.topology_key, node, 1)
                    for t in fs.anti_terms:
                        if t.matches(existing, ns_labels):
                            _add(fs.anti, t.topology_key, node, 1)
            fs.self_match = all(t.matches(pod, ns_labels) for t in fs.affinity_terms)
        state[self.name] = fs
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        fs: _FilterState = state[self.name]
        labels = node.labels
        if fs.existing_anti:
            for key, value in labels.items():
                if fs.existing_anti.get((key, value), 0) > 0:
                    return unschedulable(REASON_EXISTING_ANTI_AFFINITY)
        for t in fs.anti_terms:
            value = labels.get(t.topology_key)
            if value is not None and fs.anti.get((t.topology_key, value), 0) > 0:
                return unschedulable(REASON_ANTI_AFFINITY)
        if fs.affinity_terms:
            ok = True
            for t in fs.affinity_terms:
                value = labels.get(t.topology_key)
                if value is None or fs.affinity.get((t.topology_key, value), 0) <= 0:
                    ok = False
                    break
            if not ok:
                # The first pod of a group that matches its own terms may go anywhere with the keys.
                has_keys = all(t.topology_key in labels for t in fs.affinity_terms)
                if not (not fs.affinity and fs.self_match and has_keys):
                    return unresolvable(REASON_AFFINITY)
        return None

    # -- score -------------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        has_preferred = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not has_preferred and not snapshot.affinity_pod_count:
            return SKIPPED
        ns_labels = snapshot.namespace_labels
        scores: dict[Pair, int] = {}
        sources = snapshot.nodes if has_preferred else snapshot.nodes_with_affinity_pods()
        for node in sources:
            for existing in (node.pods if has_preferred else node.affinity_pods).values():
                for t in pod.preferred_affinity:
                    if t.matches(existing, ns_labels):
                        _add(scores, t.topology_key, node, t.weight)
                for t in pod.preferred_anti_affinity:
                    if t.matches(existing, ns_labels):
                        _add(scores, t.topology_key, node, -t.weight)
                if not existing.has_affinity:
                    continue
                if self.hard_weight:
                    for t in existing.required_affinity:
                        if t.matches(pod, ns_labels):
                            _add(scores, t.topology_key, node, self.hard_weight)
                for t in existing.preferred_affinity:
                    if t.matches(pod, ns_labels):
                        _add(scores, t.topology_key, node, t.weight)
                for t in existing.preferred_anti_affinity:
                    if t.matches(pod, ns_labels):
                        _add(scores, t.topology_key, node, -t.weight)
        if not scores:
            return SKIPPED
        state[self.name + "/score"] = scores
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: dict[Pair, int] = state[self.name + "/score"]
        return sum(scores.get((k, v), 0) for k, v in node.labels.items())

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        low, high = min(scores, default=0), max(scores, default=0)
        span = high - low
        for i, s in enumerate(scores):
            scores[i] = MAX_NODE_SCORE * (s - low) // span if span > 0 else 0

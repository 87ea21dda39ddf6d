"""PodTopologySpread: keep matching pods evenly spread over topology domains.

DoNotSchedule constraints filter (a node is out when placing the pod there would make
its domain exceed the global minimum by more than maxSkew); ScheduleAnyway constraints
score (fewer matching pods in the node's domain is better). Pods without constraints of
their own get the cluster defaults: ``args.defaultingType`` "System" (upstream's: spread
by hostname, maxSkew 3, and zone, maxSkew 5, over the pods selected by the same
Services, ReplicaSets and StatefulSets) or "List" with ``args.defaultConstraints``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sampan.client.interface import ResourceRef
from sampan.scheduler.cache import ChangeLog, Snapshot
from sampan.scheduler.framework import (
    MAX_NODE_SCORE, SKIPPED, CycleState, Plugin, Status, plugin, unresolvable, unschedulable,
)
from sampan.scheduler.helpers import NO_EXECUTE, NO_SCHEDULE, RequiredNodeAffinity, first_untolerated
from sampan.scheduler.types import HOSTNAME_LABEL, NodeInfo, Obj, PodInfo, memo_id, memoized, selector

REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
ZONE_LABEL = "topology.kubernetes.io/zone"
SYSTEM_DEFAULTS = [
    {"maxSkew": 3, "topologyKey": HOSTNAME_LABEL, "whenUnsatisfiable": "ScheduleAnyway"},
    {"maxSkew": 5, "topologyKey": ZONE_LABEL, "whenUnsatisfiable": "ScheduleAnyway"},
]
SERVICES = ResourceRef("", "v1", "services")
REPLICASETS = ResourceRef("apps", "v1", "replicasets")
STATEFULSETS = ResourceRef("apps", "v1", "statefulsets")
_COUNT_MEMO = "PodTopologySpread/count"


class Constraint:
    __slots__ = ("max_skew", "key", "selector", "min_domains", "honor_affinity", "honor_taints", "hard", "_memo")

    def __init__(self, spec: Obj, pod: PodInfo, sel: Obj | None = None) -> None:
        self.max_skew = int(spec.get("maxSkew") or 1)
        self.key: str = spec.get("topologyKey") or ""
        self.hard = (spec.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule"
        self.min_domains = int(spec.get("minDomains") or 1)
        self.honor_affinity = (spec.get("nodeAffinityPolicy") or "Honor") == "Honor"
        self.honor_taints = (spec.get("nodeTaintsPolicy") or "Ignore") == "Honor"
        label_selector = sel if sel is not None else spec.get("labelSelector")
        if label_selector is not None and spec.get("matchLabelKeys"):
            extra = [
                {"key": k, "operator": "In", "values": [pod.labels[k]]}
                for k in spec["matchLabelKeys"] if k in pod.labels
            ]
            label_selector = {
                **label_selector, "matchExpressions": list(label_selector.get("matchExpressions") or []) + extra
            }
        self.selector = selector(label_selector)
        self._memo: dict[str, int] = {}

    def includes(self, node: NodeInfo, pod: PodInfo, affinity: RequiredNodeAffinity) -> bool:
        if self.honor_affinity and not affinity.matches(node.labels, node.name):
            return False
        if self.honor_taints and first_untolerated(node.taints, pod.tolerations, (NO_SCHEDULE, NO_EXECUTE)):
            return False
        return True

    def count(self, node: NodeInfo, namespace: str) -> int:
        """Matching pods on the node, remembered until the node's pods change."""
        kid = self._memo.get(namespace)
        if kid is None:
            kid = self._memo[namespace] = memo_id((_COUNT_MEMO, str(self.selector), namespace))
        found = node.memo.get(kid)
        if found is None:
            sel = self.selector
            found = node.memo[kid] = sum(
                1 for p in node.pods.values()
                if p.namespace == namespace and not p.terminating and sel.matches(p.labels)
            )
        return found


class _Domains:
    __slots__ = ("log", "seq", "per_node", "totals", "sizes")

    def __init__(self, log: ChangeLog) -> None:
        self.log, self.seq = log, log.seq
        self.per_node: dict[str, tuple[str, int]] = {}  # node -> (its domain, matching pods)
        self.totals: dict[str, int] = {}  # domain -> matching pods
        self.sizes: dict[str, int] = {}  # domain -> nodes in it


@plugin
class PodTopologySpread(Plugin):
    name = "PodTopologySpread"

    def __init__(self, args: dict[str, Any], handle: Any) -> None:
        super().__init__(args, handle)
        self.defaulting = args.get("defaultingType") or "System"
        self.default_constraints: list[Obj] = (
            SYSTEM_DEFAULTS if self.defaulting == "System" else list(args.get("defaultConstraints") or [])
        )
        self._domains: dict[tuple[str, str, str], _Domains] = {}
        informers = getattr(handle, "informers", None)
        self._owners = (
            [informers.informer(r) for r in (SERVICES, REPLICASETS, STATEFULSETS)]
            if informers is not None and self.default_constraints else []
        )

    # -- which constraints apply -----------------------------------------------------------
    def _default_selector(self, pod: PodInfo) -> Obj | None:
        """The labels every Service/ReplicaSet/StatefulSet selecting the pod agrees on."""
        expressions: list[Obj] = []
        for informer in self._owners:
            for obj in informer.list(pod.namespace):
                spec = obj.get("spec") or {}
                sel = spec.get("selector")
                if not sel:
                    continue
                if informer.resource == SERVICES:
                    sel = {"matchLabels": sel}
                if selector(sel).matches(pod.labels):
                    expressions += [
                        {"key": k, "operator": "In", "values": [v]} for k, v in (sel.get("matchLabels") or {}).items()
                    ]
                    expressions += list(sel.get("matchExpressions") or [])
        return {"matchExpressions": expressions} if expressions else None

    def _constraints(self, pod: PodInfo, hard: bool) -> tuple[list[Constraint], bool]:
        """(constraints, whether they are the cluster defaults)."""
        own = pod.spec.get("topologySpreadConstraints") or []
        if own:
            return [c for c in (Constraint(s, pod) for s in own) if c.hard == hard], False
        if hard or not self.default_constraints:
            return [], False
        sel = self._default_selector(pod) if self._owners else None
        if sel is None:
            return [], True
        soft = [Constraint({**s, "whenUnsatisfiable": "ScheduleAnyway"}, pod, sel) for s in self.default_constraints]
        return soft, True

    # -- filter ------------------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        constraints, _ = self._constraints(pod, hard=True)
        if not constraints:
            return SKIPPED
        affinity = RequiredNodeAffinity(pod.spec)
        keys = [c.key for c in constraints]
        counts: dict[tuple[str, str], int] = {}
        first = constraints[0]
        if len(constraints) == 1 and not (first.honor_taints or (first.honor_affinity and not affinity.empty)):
            # The common case: every node with the key counts; use the running totals.
            entry = self._domain_counts(first, pod.namespace, snapshot)
            counts = {(first.key, v): entry.totals.get(v, 0) for v, size in entry.sizes.items() if size > 0}
        else:
            for node in snapshot.nodes:
                labels = node.labels
                if not all(k in labels for k in keys):
                    continue
                for c in constraints:
                    if c.includes(node, pod, affinity):
                        pair = (c.key, labels[c.key])
                        counts[pair] = counts.get(pair, 0) + c.count(node, pod.namespace)
        minimums = []
        for c in constraints:
            domains = [n for (k, _v), n in counts.items() if k == c.key]
            minimums.append(0 if len(domains) < c.min_domains else min(domains, default=0))
        # A domain may hold at most this many matching pods before the pod goes there.
        limits = [c.max_skew + m - (1 if c.selector.matches(pod.labels) else 0) for c, m in zip(constraints, minimums)]
        state[self.name] = (constraints, counts, limits)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        constraints, counts, limits = state[self.name]
        labels = node.labels
        for c, limit in zip(constraints, limits):
            value = labels.get(c.key)
            if value is None:
                return unresolvable(REASON_MISSING_LABEL)
            if counts.get((c.key, value), 0) > limit:
                return unschedulable(REASON)
        return None

    def filter_many(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        constraints, counts, limits = state[self.name]
        for c, limit in zip(constraints, limits):
            key = c.key
            nodes = [n for n in nodes if (v := n.labels.get(key)) is not None and counts.get((key, v), 0) <= limit]
        return nodes

    # -- score -------------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        constraints, defaulted = self._constraints(pod, hard=False)
        if not constraints:
            return SKIPPED
        keys = [c.key for c in constraints]
        # Own constraints need every topology key on a node; the defaults only where present.
        ignored: set[str] = set()
        if not defaulted:
            for k in keys:
                ignored.update([n.name for n in nodes if k not in n.labels])
        scored = [n for n in nodes if n.name not in ignored] if ignored else nodes
        weights = []
        counts: dict[tuple[str, str], int] = {}
        affinity = RequiredNodeAffinity(pod.spec)
        for c in constraints:
            if c.key == HOSTNAME_LABEL:
                weights.append(math.log(len(scored) + 2))  # counted per node in score()
                continue
            key = c.key
            domains = {n.labels.get(key) for n in scored}
            domains.discard(None)
            weights.append(math.log(len(domains) + 2))
            if not domains:
                continue
            # Matching pods per domain, over every node of those domains in the cluster.
            if c.honor_taints or (c.honor_affinity and not affinity.empty):
                for node in snapshot.nodes:
                    value = node.labels.get(key)
                    if value in domains and c.includes(node, pod, affinity):
                        pair = (key, value)  # type: ignore[assignment]
                        counts[pair] = counts.get(pair, 0) + c.count(node, pod.namespace)
            else:
                totals = self._domain_counts(c, pod.namespace, snapshot).totals
                for value in domains:
                    counts[(key, value)] = totals.get(value, 0)
        state[self.name + "/score"] = (constraints, counts, weights, ignored)
        return None

    def _domain_counts(self, c: Constraint, namespace: str, snapshot: Snapshot) -> _Domains:
        """Matching pods per value of ``c.key`` over all nodes, kept up to date from the
        cache's change log: only nodes changed since the last cycle are counted again."""
        entry_key = (str(c.selector), namespace, c.key)
        entry = self._domains.get(entry_key)
        log = snapshot.changes
        changed = log.since(entry.seq) if entry is not None and entry.log is log else None
        if entry is None or changed is None or len(changed) > len(snapshot.nodes) // 4:
            if len(self._domains) > 256:
                self._domains.clear()
            entry = self._domains[entry_key] = _Domains(log)
            names: Iterable[str] = snapshot.by_name
        else:
            names = set(changed)
            entry.seq = log.seq
        per_node, totals, sizes = entry.per_node, entry.totals, entry.sizes
        for name in names:
            old = per_node.pop(name, None)
            if old is not None:
                totals[old[0]] -= old[1]
                sizes[old[0]] -= 1
            node = snapshot.by_name.get(name)
            value = node.labels.get(c.key) if node is not None else None
            if node is not None and value is not None:
                found = c.count(node, namespace)
                per_node[name] = (value, found)
                totals[value] = totals.get(value, 0) + found
                sizes[value] = sizes.get(value, 0) + 1
        return entry

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        constraints, counts, weights, ignored = state[self.name + "/score"]
        if node.name in ignored:
            return 0
        total = 0.0
        for c, weight in zip(constraints, weights):
            value = node.labels.get(c.key)
            if value is None:
                continue
            cnt = c.count(node, pod.namespace) if c.key == HOSTNAME_LABEL else counts.get((c.key, value), 0)
            total += cnt * weight + (c.max_skew - 1)
        return round(total)

    def score_many(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """``score`` for many nodes, one comprehension per constraint."""
        constraints, counts, weights, ignored = state[self.name + "/score"]
        totals = [0.0] * len(nodes)
        ns = pod.namespace
        for c, weight in zip(constraints, weights):
            key, base = c.key, c.max_skew - 1
            if key == HOSTNAME_LABEL:
                here = memoized(nodes, (_COUNT_MEMO, str(c.selector), ns), lambda n, c=c: c.count(n, ns))
                part = [h * weight + base if key in n.labels else 0.0 for n, h in zip(nodes, here)]
            else:
                part = [
                    counts.get((key, v), 0) * weight + base if v is not None else 0.0
                    for v in [n.labels.get(key) for n in nodes]
                ]
            totals = [t + p for t, p in zip(totals, part)]
        if ignored:
            totals = [0.0 if n.name in ignored else t for n, t in zip(nodes, totals)]
        return [round(t) for t in totals]

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        ignored = state[self.name + "/score"][3]
        valid = [s for n, s in zip(nodes, scores) if n.name not in ignored]
        if not valid:
            return
        low, high = min(valid), max(valid)
        for i, n in enumerate(nodes):
            if n.name in ignored:
                scores[i] = 0
            elif high == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (high + low - scores[i]) // high

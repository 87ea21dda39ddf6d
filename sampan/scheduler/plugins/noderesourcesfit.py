"""NodeResourcesFit: the pod's requests must fit in what the node has left (cpu, memory,
ephemeral storage, extended resources, pod count). Scores by LeastAllocated (spread,
the default) or MostAllocated (bin packing), set with
``args: {"scoringStrategy": {"type": "MostAllocated", "resources": [{"name": "cpu", "weight": 1}, ...]}}``."""

from __future__ import annotations

from sampan.scheduler.framework import MAX_NODE_SCORE, CycleState, Plugin, Status, plugin, unschedulable
from sampan.scheduler.types import CPU, EPHEMERAL, MEMORY, NodeInfo, PodInfo, memoized

LEAST_ALLOCATED, MOST_ALLOCATED = "LeastAllocated", "MostAllocated"


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    """Every reason the pod does not fit (empty when it fits)."""
    reasons = []
    if len(node.pods) + 1 > node.alloc_pods:
        reasons.append("Too many pods")
    req, alloc, used = pod.requests, node.allocatable, node.requested
    if req.cpu and req.cpu > alloc.cpu - used.cpu:
        reasons.append("Insufficient cpu")
    if req.memory and req.memory > alloc.memory - used.memory:
        reasons.append("Insufficient memory")
    if req.ephemeral and req.ephemeral > alloc.ephemeral - used.ephemeral:
        reasons.append("Insufficient ephemeral-storage")
    for name, amount in req.scalars.items():
        if amount and amount > alloc.scalars.get(name, 0) - used.scalars.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def fits(pod: PodInfo, node: NodeInfo) -> bool:
    req = pod.requests
    if node.free_pods < 1:
        return False
    if req.cpu > node.free_cpu and req.cpu:
        return False
    if req.memory > node.free_memory and req.memory:
        return False
    if req.ephemeral > node.free_ephemeral and req.ephemeral:
        return False
    if req.scalars:
        alloc, used = node.allocatable, node.requested
        for name, amount in req.scalars.items():
            if amount and amount > alloc.scalars.get(name, 0) - used.scalars.get(name, 0):
                return False
    return True


def fitting(pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
    """``fits`` over many nodes at once, in one comprehension."""
    req = pod.requests
    if req.scalars:
        return [n for n in nodes if fits(pod, n)]
    # A resource the pod does not ask for is not checked (even on an over-committed node).
    unchecked = -(1 << 62)
    cpu, memory, ephemeral = req.cpu or unchecked, req.memory or unchecked, req.ephemeral or unchecked
    return [
        n for n in nodes
        if n.free_pods > 0 and n.free_cpu >= cpu and n.free_memory >= memory and n.free_ephemeral >= ephemeral
    ]


@plugin
class NodeResourcesFit(Plugin):
    name = "NodeResourcesFit"

    def __init__(self, args: dict, handle: object) -> None:
        super().__init__(args, handle)  # type: ignore[arg-type]
        strategy = args.get("scoringStrategy") or {}
        self.strategy: str = strategy.get("type") or LEAST_ALLOCATED
        if self.strategy not in (LEAST_ALLOCATED, MOST_ALLOCATED):
            raise ValueError(f"NodeResourcesFit: unsupported scoringStrategy type {self.strategy!r}")
        resources = strategy.get("resources") or [{"name": CPU, "weight": 1}, {"name": MEMORY, "weight": 1}]
        self.weights = {r["name"]: int(r.get("weight") or 1) for r in resources}
        self._cpu_mem_only = set(self.weights) == {CPU, MEMORY} and self.weights[CPU] == self.weights[MEMORY]

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if fits(pod, node):
            return None
        return unschedulable(*insufficient(pod, node))

    def filter_many(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[NodeInfo]:
        return fitting(pod, nodes)

    def score_key(self, state: CycleState, pod: PodInfo) -> tuple[object, ...]:
        key = (self.name, self.strategy, pod.non_zero_cpu, pod.non_zero_memory, id(self))
        if not self._cpu_mem_only:
            key += (pod.requests.ephemeral, tuple(sorted(pod.requests.scalars.items())))
        return key

    def score_many(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        return memoized(nodes, self.score_key(state, pod), lambda n: self.score(state, pod, n))

    def _resource_score(self, requested: int, capacity: int) -> int:
        if capacity <= 0:
            return 0
        if self.strategy == LEAST_ALLOCATED:
            return 0 if requested > capacity else (capacity - requested) * MAX_NODE_SCORE // capacity
        return MAX_NODE_SCORE if requested > capacity else requested * MAX_NODE_SCORE // capacity

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        alloc = node.allocatable
        if self._cpu_mem_only:
            # The common case, inlined: cpu and memory weighted equally.
            cap_c, cap_m = alloc.cpu, alloc.memory
            req_c, req_m = node.non_zero_cpu + pod.non_zero_cpu, node.non_zero_memory + pod.non_zero_memory
            if self.strategy == LEAST_ALLOCATED:
                sc = (cap_c - req_c) * 100 // cap_c if 0 < cap_c and req_c <= cap_c else 0
                sm = (cap_m - req_m) * 100 // cap_m if 0 < cap_m and req_m <= cap_m else 0
            else:
                sc = self._resource_score(req_c, cap_c)
                sm = self._resource_score(req_m, cap_m)
            return (sc + sm) // 2
        total = weights = 0
        for name, weight in self.weights.items():
            if name == CPU:
                req, cap = node.non_zero_cpu + pod.non_zero_cpu, alloc.cpu
            elif name == MEMORY:
                req, cap = node.non_zero_memory + pod.non_zero_memory, alloc.memory
            elif name == EPHEMERAL:
                req, cap = node.requested.ephemeral + pod.requests.ephemeral, alloc.ephemeral
            else:
                req = node.requested.scalars.get(name, 0) + pod.requests.scalars.get(name, 0)
                cap = alloc.scalars.get(name, 0)
                if cap == 0:
                    continue  # extended resources the node lacks don't count
            total += self._resource_score(req, cap) * weight
            weights += weight
        return total // weights if weights else 0

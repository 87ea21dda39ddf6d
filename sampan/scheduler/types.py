"""What the scheduler knows about pods and nodes, precomputed once per object version.

A ``PodInfo`` holds a pod's requests, ports, tolerations and affinity terms already
parsed; a ``NodeInfo`` holds a node's allocatable resources, taints and labels plus the
running sums of what the pods on it request. The per-node filter loop only compares
numbers and looks up dict keys, so nothing here parses strings on the hot path.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import lru_cache
from itertools import compress, repeat
from operator import is_
from typing import Any

from sampan.api.quantity import parse_quantity
from sampan.api.selectors import LabelSelector, SelectorError, label_selector_from_dict

Obj = dict[str, Any]

CPU, MEMORY, EPHEMERAL, PODS = "cpu", "memory", "ephemeral-storage", "pods"
# Requests assumed for scoring when a container states none (upstream's non-zero defaults).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
HOSTNAME_LABEL = "kubernetes.io/hostname"


@lru_cache(maxsize=4096)
def milli(value: str) -> int:
    """Milli-units of a quantity (cpu); bad values count as 0 (validation rejects them earlier)."""
    try:
        return parse_quantity(value).milli_value()
    except (ValueError, TypeError):
        return 0


@lru_cache(maxsize=4096)
def units(value: str) -> int:
    try:
        return parse_quantity(value).value()
    except (ValueError, TypeError):
        return 0


class Resources:
    """cpu in milli-cores, memory and ephemeral storage in bytes, extended resources by name."""

    __slots__ = ("cpu", "memory", "ephemeral", "scalars")

    def __init__(self, cpu: int = 0, memory: int = 0, ephemeral: int = 0, scalars: dict[str, int] | None = None):
        self.cpu, self.memory, self.ephemeral = cpu, memory, ephemeral
        self.scalars: dict[str, int] = scalars if scalars is not None else {}

    @classmethod
    def from_list(cls, items: Obj | None) -> Resources:
        res = cls()
        for name, value in (items or {}).items():
            res.set(name, value)
        return res

    def set(self, name: str, value: Any) -> None:
        text = str(value)
        if name == CPU:
            self.cpu = milli(text)
        elif name == MEMORY:
            self.memory = units(text)
        elif name == EPHEMERAL:
            self.ephemeral = units(text)
        elif name != PODS:
            self.scalars[name] = units(text)

    def add(self, other: Resources) -> None:
        self.cpu += other.cpu
        self.memory += other.memory
        self.ephemeral += other.ephemeral
        for k, v in other.scalars.items():
            self.scalars[k] = self.scalars.get(k, 0) + v

    def sub(self, other: Resources) -> None:
        self.cpu -= other.cpu
        self.memory -= other.memory
        self.ephemeral -= other.ephemeral
        for k, v in other.scalars.items():
            self.scalars[k] = self.scalars.get(k, 0) - v

    def max_with(self, other: Resources) -> None:
        self.cpu = max(self.cpu, other.cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral = max(self.ephemeral, other.ephemeral)
        for k, v in other.scalars.items():
            self.scalars[k] = max(self.scalars.get(k, 0), v)

    def copy(self) -> Resources:
        return Resources(self.cpu, self.memory, self.ephemeral, dict(self.scalars))

    def __repr__(self) -> str:
        return f"Resources(cpu={self.cpu}m, memory={self.memory}, ephemeral={self.ephemeral}, {self.scalars})"


def pod_requests(spec: Obj, non_zero: bool = False) -> Resources:
    """What a pod asks for: its containers (plus sidecars), at least any one init
    container, plus overhead. ``non_zero`` counts unset cpu/memory as the scoring defaults."""

    def container(c: Obj) -> Resources:
        res = Resources.from_list((c.get("resources") or {}).get("requests"))
        if non_zero:
            requests = (c.get("resources") or {}).get("requests") or {}
            if CPU not in requests:
                res.cpu = DEFAULT_MILLI_CPU
            if MEMORY not in requests:
                res.memory = DEFAULT_MEMORY
        return res

    total = Resources()
    for c in spec.get("containers") or ():
        total.add(container(c))
    sidecars, init_max = Resources(), Resources()
    for c in spec.get("initContainers") or ():
        req = container(c)
        if c.get("restartPolicy") == "Always":
            total.add(req)
            sidecars.add(req)
            req = sidecars.copy()
        else:
            req.add(sidecars)
        init_max.max_with(req)
    total.max_with(init_max)
    if spec.get("overhead"):
        total.add(Resources.from_list(spec["overhead"]))
    return total


def _states_cpu_and_memory(spec: Obj) -> bool:
    for group in (spec.get("containers") or (), spec.get("initContainers") or ()):
        for c in group:
            requests = (c.get("resources") or {}).get("requests") or {}
            if CPU not in requests or MEMORY not in requests:
                return False
    return True


def selector(spec: Obj | None) -> LabelSelector:
    """A metav1.LabelSelector; an invalid one matches nothing."""
    try:
        return label_selector_from_dict(spec)
    except SelectorError:
        return LabelSelector.match_nothing()


class AffinityTerm:
    """A parsed PodAffinityTerm: which pods (selector, namespaces) within which topology."""

    __slots__ = ("selector", "namespaces", "all_namespaces", "namespace_selector", "topology_key", "weight")

    def __init__(self, term: Obj, pod_namespace: str, pod_labels: dict[str, str], weight: int = 0) -> None:
        sel = dict(term.get("labelSelector") or {}) if term.get("labelSelector") is not None else None
        if sel is not None:
            # matchLabelKeys/mismatchLabelKeys add the incoming pod's own label values.
            extra = list(sel.get("matchExpressions") or [])
            for key in term.get("matchLabelKeys") or ():
                if key in pod_labels:
                    extra.append({"key": key, "operator": "In", "values": [pod_labels[key]]})
            for key in term.get("mismatchLabelKeys") or ():
                if key in pod_labels:
                    extra.append({"key": key, "operator": "NotIn", "values": [pod_labels[key]]})
            sel["matchExpressions"] = extra
        self.selector = selector(sel)
        names = set(term.get("namespaces") or ())
        ns_sel = term.get("namespaceSelector")
        # An empty namespaceSelector means every namespace; none and no names means the pod's own.
        self.all_namespaces = ns_sel is not None and not ns_sel.get("matchLabels") and not ns_sel.get(
            "matchExpressions"
        )
        self.namespace_selector = None if ns_sel is None or self.all_namespaces else selector(ns_sel)
        if not names and ns_sel is None:
            names = {pod_namespace}
        self.namespaces = frozenset(names)
        self.topology_key: str = term.get("topologyKey") or ""
        self.weight = weight

    def matches(self, pod: PodInfo, namespace_labels: dict[str, dict[str, str]] | None = None) -> bool:
        if not self.all_namespaces and pod.namespace not in self.namespaces:
            ns_sel = self.namespace_selector
            if ns_sel is None or namespace_labels is None or not ns_sel.matches(namespace_labels.get(pod.namespace)):
                return False
        return self.selector.matches(pod.labels)


def _terms(pod_affinity: Obj | None, ns: str, labels: dict[str, str]) -> tuple[list[AffinityTerm], list[AffinityTerm]]:
    if not pod_affinity:
        return [], []
    required = [
        AffinityTerm(t, ns, labels) for t in pod_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    ]
    preferred = [
        AffinityTerm(w.get("podAffinityTerm") or {}, ns, labels, int(w.get("weight") or 0))
        for w in pod_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    ]
    return required, preferred


class PodInfo:
    """One pod as the scheduler sees it."""

    __slots__ = (
        "pod", "key", "name", "namespace", "uid", "labels", "node_name", "priority", "requests", "non_zero_cpu",
        "non_zero_memory", "host_ports", "tolerations", "required_affinity", "preferred_affinity",
        "required_anti_affinity", "preferred_anti_affinity", "images", "terminating", "spec",
    )

    def __init__(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod, self.spec = pod, spec
        self.name: str = meta.get("name", "")
        self.namespace: str = meta.get("namespace", "")
        self.key = f"{self.namespace}/{self.name}"
        self.uid: str = meta.get("uid", "")
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.node_name: str = spec.get("nodeName") or ""
        self.priority: int = int(spec.get("priority") or 0)
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.requests = pod_requests(spec)
        # The scoring defaults only fill in containers that state no cpu or memory.
        nz = self.requests if _states_cpu_and_memory(spec) else pod_requests(spec, non_zero=True)
        self.non_zero_cpu, self.non_zero_memory = nz.cpu, nz.memory
        ports: list[tuple[str, str, int]] = []
        for c in list(spec.get("initContainers") or ()) + list(spec.get("containers") or ()):
            for p in c.get("ports") or ():
                if p.get("hostPort"):
                    ports.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
        self.host_ports = ports
        self.tolerations: list[Obj] = list(spec.get("tolerations") or ())
        affinity = spec.get("affinity") or {}
        self.required_affinity, self.preferred_affinity = _terms(
            affinity.get("podAffinity"), self.namespace, self.labels
        )
        self.required_anti_affinity, self.preferred_anti_affinity = _terms(
            affinity.get("podAntiAffinity"), self.namespace, self.labels
        )
        self.images = [c.get("image") or "" for c in spec.get("containers") or () if c.get("image")]

    def on_node(self, node_name: str) -> PodInfo:
        """The same pod placed on ``node_name`` (a copy: the queue keeps the pending one)."""
        placed = PodInfo.__new__(PodInfo)
        for slot in PodInfo.__slots__:
            setattr(placed, slot, getattr(self, slot))
        placed.node_name = node_name
        return placed

    @property
    def has_affinity(self) -> bool:
        return bool(
            self.required_affinity or self.preferred_affinity or self.required_anti_affinity
            or self.preferred_anti_affinity
        )

    def __repr__(self) -> str:
        return f"PodInfo({self.key} on {self.node_name or '-'})"


def _normalize_image(name: str) -> str:
    """Image names compare with the implied tag, as the kubelet reports them."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in last else name + ":latest"


_MEMO_KEYS: dict[tuple[Any, ...], int] = {}
_MEMO_IDS = itertools.count()


def memo_id(key: tuple[Any, ...]) -> int:
    """A small int standing for ``key`` in NodeInfo.memo: hashing it per node is free, a
    tuple's is not. Ids are never reused, so forgetting the mapping only costs misses."""
    kid = _MEMO_KEYS.get(key)
    if kid is None:
        if len(_MEMO_KEYS) > 10000:
            _MEMO_KEYS.clear()
        kid = _MEMO_KEYS[key] = next(_MEMO_IDS)
    return kid


def memoized(nodes: list[NodeInfo], key: tuple[Any, ...], compute: Callable[[NodeInfo], int]) -> list[int]:
    """Per-node values from each node's memo, computing (and remembering) the missing ones."""
    kid = memo_id(key)
    scores = [n.memo.get(kid) for n in nodes]
    if None in scores:
        for i in compress(range(len(scores)), map(is_, scores, repeat(None))):
            n = nodes[i]
            scores[i] = n.memo[kid] = compute(n)
    return scores  # type: ignore[return-value]


class NodeInfo:
    """A node plus the sums of what its pods request."""

    __slots__ = (
        "node", "name", "labels", "taints", "unschedulable", "allocatable", "alloc_pods", "requested",
        "non_zero_cpu", "non_zero_memory", "pods", "used_ports", "images", "affinity_pods",
        "anti_affinity_pods", "generation", "free_cpu", "free_memory", "free_ephemeral", "free_pods", "memo",
    )

    def __init__(self, node: Obj | None = None, name: str = "") -> None:
        self.pods: dict[str, PodInfo] = {}
        self.requested = Resources()
        self.non_zero_cpu = self.non_zero_memory = 0
        self.used_ports: dict[tuple[str, str, int], int] = {}
        self.affinity_pods: dict[str, PodInfo] = {}  # pods with any (anti-)affinity
        self.anti_affinity_pods: dict[str, PodInfo] = {}  # pods with required anti-affinity
        self.generation = 0
        self.node: Obj | None = None
        self.name = name
        self.labels: dict[str, str] = {}
        self.taints: list[Obj] = []
        self.unschedulable = False
        self.allocatable = Resources()
        self.alloc_pods = 0
        self.images: dict[str, int] = {}
        self.free_cpu = self.free_memory = self.free_ephemeral = self.free_pods = 0
        self.memo = {}
        if node is not None:
            self.set_node(node)

    def _refresh_free(self) -> None:
        """What is left, kept up to date so the filter loop compares plain ints."""
        alloc, used = self.allocatable, self.requested
        self.free_cpu = alloc.cpu - used.cpu
        self.free_memory = alloc.memory - used.memory
        self.free_ephemeral = alloc.ephemeral - used.ephemeral
        self.free_pods = self.alloc_pods - len(self.pods)
        # Scores that depend only on this node's resources and the pod's requests, by request
        # shape; cleared on every change, so consecutive pods of one shape reuse them.
        self.memo: dict[int, int] = {}

    def set_node(self, node: Obj) -> None:
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        self.node = node
        self.name = meta.get("name", "")
        self.labels = meta.get("labels") or {}
        self.taints = list(spec.get("taints") or ())
        self.unschedulable = bool(spec.get("unschedulable"))
        alloc = status.get("allocatable") or status.get("capacity") or {}
        self.allocatable = Resources.from_list(alloc)
        self.alloc_pods = units(str(alloc.get(PODS, "0")))
        images: dict[str, int] = {}
        for image in status.get("images") or ():
            size = int(image.get("sizeBytes") or 0)
            for name in image.get("names") or ():
                images[_normalize_image(name)] = size
        self.images = images
        self._refresh_free()
        self.generation += 1

    def add_pod(self, pod: PodInfo) -> None:
        if pod.key in self.pods:
            self.remove_pod(self.pods[pod.key])
        self.pods[pod.key] = pod
        self.requested.add(pod.requests)
        self.non_zero_cpu += pod.non_zero_cpu
        self.non_zero_memory += pod.non_zero_memory
        for port in pod.host_ports:
            self.used_ports[port] = self.used_ports.get(port, 0) + 1
        if pod.has_affinity:
            self.affinity_pods[pod.key] = pod
        if pod.required_anti_affinity:
            self.anti_affinity_pods[pod.key] = pod
        self._refresh_free()
        self.generation += 1

    def remove_pod(self, pod: PodInfo) -> bool:
        found = self.pods.pop(pod.key, None)
        if found is None:
            return False
        self.requested.sub(found.requests)
        self.non_zero_cpu -= found.non_zero_cpu
        self.non_zero_memory -= found.non_zero_memory
        for port in found.host_ports:
            left = self.used_ports.get(port, 0) - 1
            if left > 0:
                self.used_ports[port] = left
            else:
                self.used_ports.pop(port, None)
        self.affinity_pods.pop(found.key, None)
        self.anti_affinity_pods.pop(found.key, None)
        self._refresh_free()
        self.generation += 1
        return True

    def clone(self) -> NodeInfo:
        """A copy whose pod set can change without touching this one (preemption dry runs)."""
        other = NodeInfo(name=self.name)
        other.node, other.labels, other.taints = self.node, self.labels, self.taints
        other.unschedulable, other.allocatable, other.alloc_pods = self.unschedulable, self.allocatable, self.alloc_pods
        other.images = self.images
        other.pods = dict(self.pods)
        other.requested = self.requested.copy()
        other.non_zero_cpu, other.non_zero_memory = self.non_zero_cpu, self.non_zero_memory
        other.used_ports = dict(self.used_ports)
        other.affinity_pods = dict(self.affinity_pods)
        other.anti_affinity_pods = dict(self.anti_affinity_pods)
        other._refresh_free()
        return other

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, {len(self.pods)} pods, requested={self.requested})"

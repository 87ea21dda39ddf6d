"""The scheduler's cache of nodes and the pods on them, and the snapshot a cycle reads.

Informer events update the cache incrementally (one NodeInfo changes per event). A pod
the scheduler has just placed is *assumed* on its node at once, so the next cycle sees
its resources while the binding is still being written; the pod informer later confirms
it, or a failed binding forgets it.

A scheduling cycle runs without awaiting, on the one event loop, so nothing changes the
cache while it runs: the snapshot is a read-only view over the live NodeInfos rather than
a copy, and taking one costs nothing unless the set of nodes changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sampan.scheduler.types import NodeInfo, Obj, PodInfo


class ChangeLog:
    """Names of the nodes whose pods, labels or resources changed, in order, so plugins
    can keep cluster-wide aggregates up to date instead of recounting every node."""

    def __init__(self, keep: int = 20000) -> None:
        self._names: list[str] = []
        self._start = 0
        self._keep = keep

    @property
    def seq(self) -> int:
        return self._start + len(self._names)

    def add(self, name: str) -> None:
        self._names.append(name)
        if len(self._names) > 2 * self._keep:
            drop = len(self._names) - self._keep
            del self._names[:drop]
            self._start += drop

    def since(self, seq: int) -> list[str] | None:
        """Changes after ``seq``; None when they are no longer all known."""
        if seq < self._start or seq > self.seq:
            return None
        return self._names[seq - self._start :]


@dataclass
class Snapshot:
    nodes: list[NodeInfo]
    by_name: dict[str, NodeInfo]
    # image name -> how many nodes have it (ImageLocality spreads its score by this).
    image_nodes: dict[str, int] = field(default_factory=dict)
    affinity_pod_count: int = 0
    # How many nodes have taints / are cordoned: when none, those filters have nothing to do.
    tainted_nodes: int = 0
    unschedulable_nodes: int = 0
    anti_affinity_pod_count: int = 0
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    changes: ChangeLog = field(default_factory=ChangeLog)

    def get(self, name: str) -> NodeInfo | None:
        return self.by_name.get(name)

    # node name -> its pods with (anti-)affinity terms, kept by the cache
    affinity_nodes: dict[str, int] = field(default_factory=dict)
    anti_affinity_nodes: dict[str, int] = field(default_factory=dict)

    def nodes_with_affinity_pods(self) -> list[NodeInfo]:
        found = (self.by_name.get(name) for name in self.affinity_nodes)
        return sorted((n for n in found if n is not None), key=lambda n: n.name)

    def nodes_with_anti_affinity_pods(self) -> list[NodeInfo]:
        found = (self.by_name.get(name) for name in self.anti_affinity_nodes)
        return sorted((n for n in found if n is not None), key=lambda n: n.name)

    @classmethod
    def build(cls, nodes: Iterable[Obj], pods: Iterable[Obj] = ()) -> Snapshot:
        """A snapshot from plain objects (tests and the core benchmark)."""
        cache = Cache()
        for node in nodes:
            cache.add_node(node)
        for pod in pods:
            cache.add_pod(pod)
        return cache.snapshot()


@dataclass
class _PodState:
    info: PodInfo
    assumed: bool = False


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, _PodState] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self._image_nodes: dict[str, int] = {}
        self._affinity = 0
        self._anti_affinity = 0
        self._affinity_nodes: dict[str, int] = {}
        self._anti_affinity_nodes: dict[str, int] = {}
        self._tainted = 0
        self._unschedulable = 0
        self._snapshot: Snapshot | None = None
        self.changes = ChangeLog()

    # -- nodes ------------------------------------------------------------------------
    def add_node(self, node: Obj) -> NodeInfo:
        name = (node.get("metadata") or {}).get("name", "")
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name=name)
        had_node = info.node is not None
        if had_node:
            self._count_node(info, -1)
        info.set_node(node)
        self._count_node(info, 1)
        self.changes.add(name)
        if not had_node:
            self._snapshot = None
        return info

    update_node = add_node

    def refresh_node(self, node: Obj) -> None:
        """A new version of a node with nothing the scheduler reads changed."""
        info = self.nodes.get((node.get("metadata") or {}).get("name", ""))
        if info is None or info.node is None:
            self.add_node(node)
        else:
            info.node = node

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        if info.node is not None:
            self._count_node(info, -1)
        if info.pods:
            # Pods still bound here keep a placeholder until their own deletes arrive.
            info.node = None
        else:
            del self.nodes[name]
        self.changes.add(name)
        self._snapshot = None

    def _count_node(self, info: NodeInfo, delta: int) -> None:
        if info.taints:
            self._tainted += delta
        if info.unschedulable:
            self._unschedulable += delta
        for image in info.images:
            left = self._image_nodes.get(image, 0) + delta
            if left > 0:
                self._image_nodes[image] = left
            else:
                self._image_nodes.pop(image, None)

    # -- pods -------------------------------------------------------------------------
    def _place(self, info: PodInfo) -> None:
        node = self.nodes.get(info.node_name)
        if node is None:
            node = self.nodes[info.node_name] = NodeInfo(name=info.node_name)
        old = node.pods.get(info.key)
        if old is not None:
            self._count_affinity(old, -1)
        node.add_pod(info)
        self.changes.add(info.node_name)
        self._count_affinity(info, 1)

    def _unplace(self, info: PodInfo) -> None:
        node = self.nodes.get(info.node_name)
        if node is None or not node.remove_pod(info):
            return
        self.changes.add(info.node_name)
        self._count_affinity(info, -1)
        if node.node is None and not node.pods:
            del self.nodes[info.node_name]

    def _count_affinity(self, info: PodInfo, delta: int) -> None:
        if info.has_affinity:
            self._affinity += delta
            _bump(self._affinity_nodes, info.node_name, delta)
        if info.required_anti_affinity:
            self._anti_affinity += delta
            _bump(self._anti_affinity_nodes, info.node_name, delta)

    def add_pod(self, pod: Obj) -> PodInfo | None:
        """A pod bound to a node (informer add/update); confirms an assumed pod."""
        spec = pod.get("spec") or {}
        node_name = spec.get("nodeName")
        if not node_name:
            return None
        meta = pod.get("metadata") or {}
        state = self.pods.get(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
        if state is not None and state.assumed and _same_pod(state.info, pod, spec, node_name):
            # The binding we assumed, as written: what the node counts is already right.
            state.info.pod, state.info.spec, state.assumed = pod, spec, False
            return state.info
        info = PodInfo(pod)
        if state is not None and state.info.node_name != info.node_name:
            self._unplace(state.info)
        self.pods[info.key] = _PodState(info)
        self._place(info)
        return info

    update_pod = add_pod

    def remove_pod(self, key: str) -> PodInfo | None:
        state = self.pods.pop(key, None)
        if state is None:
            return None
        self._unplace(state.info)
        return state.info

    def assume(self, info: PodInfo, node_name: str) -> PodInfo:
        """Count the pod on ``node_name`` before the binding is written."""
        placed = info.on_node(node_name)
        self.pods[placed.key] = _PodState(placed, assumed=True)
        self._place(placed)
        return placed

    def forget(self, key: str) -> None:
        """A binding failed: take the assumed pod off its node again."""
        state = self.pods.get(key)
        if state is not None and state.assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        state = self.pods.get(key)
        return state is not None and state.assumed

    def pod(self, key: str) -> PodInfo | None:
        state = self.pods.get(key)
        return state.info if state is not None else None

    # -- the snapshot -----------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        if snap is None:
            listed = sorted((n for n in self.nodes.values() if n.node is not None), key=lambda n: n.name)
            snap = self._snapshot = Snapshot(listed, {n.name: n for n in listed})
        snap.image_nodes = self._image_nodes
        snap.affinity_pod_count = self._affinity
        snap.tainted_nodes = self._tainted
        snap.unschedulable_nodes = self._unschedulable
        snap.anti_affinity_pod_count = self._anti_affinity
        snap.affinity_nodes = self._affinity_nodes
        snap.anti_affinity_nodes = self._anti_affinity_nodes
        snap.namespace_labels = self.namespace_labels
        snap.changes = self.changes
        return snap


def _bump(counts: dict[str, int], key: str, delta: int) -> None:
    left = counts.get(key, 0) + delta
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def _same_pod(info: PodInfo, pod: Obj, spec: Obj, node_name: str) -> bool:
    """Whether ``pod`` is the assumed pod bound as assumed, with nothing else changed that
    the scheduler counts (requests, ports, labels, affinity live in spec and labels)."""
    meta = pod.get("metadata") or {}
    if info.node_name != node_name or info.uid != meta.get("uid") or info.labels != (meta.get("labels") or {}):
        return False
    if meta.get("deletionTimestamp"):
        return False
    return {**spec, "nodeName": ""} == {**info.spec, "nodeName": ""}

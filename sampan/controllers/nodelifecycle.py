"""Node lifecycle: node health from heartbeats, condition-based taints, pods marked not ready.

A node's heartbeat is its Lease in ``kube-node-lease`` being renewed or its Ready condition's
heartbeat moving. A node silent for longer than the grace period (40 s upstream; nodes that
never posted status get the longer startup grace) has all its kubelet conditions set to
Unknown ("Kubelet stopped posting node status."), and its pods' Ready condition turned False.
Taints follow the conditions and the cordon flag, as upstream: Ready=False gives
``node.kubernetes.io/not-ready`` and Ready=Unknown ``node.kubernetes.io/unreachable``, both
NoSchedule and NoExecute (the taint eviction controller acts on the latter);
MemoryPressure/DiskPressure/PIDPressure/NetworkUnavailable and ``spec.unschedulable`` give
NoSchedule taints. Taints go away when the condition clears.

Not done here (upstream's zone logic): eviction rate limits per zone and pausing evictions
when a whole zone is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sampan.client.events import NORMAL, WARNING
from sampan.client.informer import by_node_name
from sampan.client.interface import LEASES, NODES, PODS, Obj, is_conflict, is_not_found
from sampan.controllers.base import Controller, register
from sampan.controllers.util import taints as tt
from sampan.controllers.util.conditions import get_condition, parse_time, rfc3339
from sampan.controllers.util.pods import is_ready

LEASE_NAMESPACE = "kube-node-lease"
NODE_NAME_INDEX = "nodeName"
CONFLICT_RETRY = 0.1
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# Taints this controller owns; any other taint on a node is left alone.
_CONDITION_TAINTS = {
    ("MemoryPressure", "True"): tt.MEMORY_PRESSURE,
    ("DiskPressure", "True"): tt.DISK_PRESSURE,
    ("PIDPressure", "True"): tt.PID_PRESSURE,
    ("NetworkUnavailable", "True"): tt.NETWORK_UNAVAILABLE,
    ("Ready", "False"): tt.NOT_READY,
    ("Ready", "Unknown"): tt.UNREACHABLE,
}
_MANAGED_NO_SCHEDULE = set(_CONDITION_TAINTS.values()) | {tt.UNSCHEDULABLE}
_MANAGED_NO_EXECUTE = {tt.NOT_READY, tt.UNREACHABLE}


@dataclass
class Health:
    """What the controller last saw of a node's heartbeats, by its own clock (no skew)."""

    probe: float
    heartbeat: tuple[Any, ...]
    renew: float
    uid: str = ""
    healthy: bool = True


def _ready_key(node: Obj) -> tuple[Any, ...]:
    ready = get_condition(node.get("status"), "Ready") or {}
    return ready.get("lastHeartbeatTime"), ready.get("lastTransitionTime"), ready.get("status")


def _renew_time(lease: Obj | None) -> float:
    return parse_time(((lease or {}).get("spec") or {}).get("renewTime")) or 0.0


def desired_taints(node: Obj, now: float) -> list[Obj]:
    """The node's taints with the controller-managed ones set from its conditions and cordon flag."""
    status, spec = node.get("status") or {}, node.get("spec") or {}
    no_schedule: list[str] = []
    for cond in status.get("conditions") or []:
        key = _CONDITION_TAINTS.get((cond.get("type"), cond.get("status")))
        if key:
            no_schedule.append(key)
    if spec.get("unschedulable"):
        no_schedule.append(tt.UNSCHEDULABLE)
    ready = (get_condition(status, "Ready") or {}).get("status")
    no_execute = {"False": [tt.NOT_READY], "Unknown": [tt.UNREACHABLE]}.get(ready or "", [])
    current = tt.node_taints(node)
    kept = [
        t for t in current
        if not (t.get("effect") == tt.NO_SCHEDULE and t.get("key") in _MANAGED_NO_SCHEDULE)
        and not (t.get("effect") == tt.NO_EXECUTE and t.get("key") in _MANAGED_NO_EXECUTE)
    ]
    wanted = [{"key": k, "effect": tt.NO_SCHEDULE} for k in sorted(set(no_schedule))]
    wanted += [{"key": k, "effect": tt.NO_EXECUTE, "timeAdded": rfc3339(now)} for k in no_execute]
    out = list(kept)
    for taint in wanted:
        # A taint that is already there keeps its timeAdded (evictions count from it).
        out.append(next((t for t in current if tt.same_taint(t, taint)), taint))
    return out


def unknown_conditions(node: Obj, now: float) -> list[Obj] | None:
    """The conditions after the node stopped posting status, or None if they already say so."""
    stamp = rfc3339(now)
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    changed = False
    for kind in KUBELET_CONDITIONS:
        cond = next((c for c in conditions if c.get("type") == kind), None)
        if cond is None:
            conditions.append({
                "type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.",
                "lastHeartbeatTime": node["metadata"].get("creationTimestamp"), "lastTransitionTime": stamp,
            })
            changed = True
        elif cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                        lastTransitionTime=stamp)
            changed = True
    return conditions if changed else None


@register
class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    component = "node-controller"
    workers = 4

    def setup(self) -> None:
        self.health: dict[str, Health] = {}
        self.nodes = self.watch(NODES)
        self.leases = self.informer(LEASES, namespace=LEASE_NAMESPACE)
        self.leases.add_handler(on_add=self._lease_changed, on_update=lambda _old, new: self._lease_changed(new))
        self.pods = self.informer(PODS)
        self.pods.add_indexer(NODE_NAME_INDEX, by_node_name)
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda _old, new: self._pod_changed(new))

    @property
    def grace(self) -> float:
        return float(self.ctx.options.node_monitor_grace_period)

    @property
    def startup_grace(self) -> float:
        # Upstream: 60 s for nodes that never posted status, against 40 s of monitor grace.
        return float(self.ctx.options.extra.get("node_startup_grace_period", self.grace * 1.5))

    def _lease_changed(self, lease: Obj) -> None:
        name = lease["metadata"]["name"]
        health = self.health.get(name)
        renew = _renew_time(lease)
        if health is not None and health.healthy and renew > health.renew:
            # The common case, thousands of times a minute: just note the heartbeat.
            health.renew, health.probe = renew, self.ctx.clock()
            return
        self.queue.add(name)

    def _pod_changed(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        health = self.health.get(node or "")
        if health is not None and not health.healthy and is_ready(pod):
            self.queue.add(node)

    def _observe(self, node: Obj, now: float) -> Health:
        name = node["metadata"]["name"]
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        health = self.health.get(name)
        if health is None:
            health = self.health[name] = Health(now, _ready_key(node), _renew_time(lease), node["metadata"]["uid"])
            self.recorder.event(_node_ref(node), NORMAL, "RegisteredNode",
                                f"Node {name} event: Registered Node {name} in Controller")
            return health
        key = _ready_key(node)
        if key != health.heartbeat:
            health.heartbeat, health.probe = key, now
        renew = _renew_time(lease)
        if renew > health.renew:
            health.renew, health.probe = renew, now
        return health

    async def reconcile(self, key: str) -> float | None:
        try:
            return await self._reconcile(key)
        except Exception as exc:
            if not is_conflict(exc):
                raise
            return CONFLICT_RETRY  # someone wrote first; the informer brings their version

    async def _reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            gone = self.health.pop(key, None)
            if gone is not None:
                ref = {"apiVersion": "v1", "kind": "Node", "name": key, "uid": gone.uid}
                message = f"Node {key} event: Removing Node {key} from Controller"
                self.recorder.event(ref, NORMAL, "RemovingNode", message)
            return None
        now = self.ctx.clock()
        health = self._observe(node, now)
        was_ready = (get_condition(node.get("status"), "Ready") or {}).get("status")
        never_posted = get_condition(node.get("status"), "Ready") is None
        grace = self.startup_grace if never_posted else self.grace
        recheck: float | None = health.probe + grace - now
        if recheck is not None and recheck <= 0:
            conditions = unknown_conditions(node, now)
            if conditions is not None:
                node = await self._write_conditions(node, conditions)
                health.heartbeat = _ready_key(node)  # our own write is no heartbeat
            recheck = None
        ready = (get_condition(node.get("status"), "Ready") or {}).get("status")
        health.healthy = ready == "True"
        if was_ready == "True" and ready != "True":
            self.recorder.event(_node_ref(node), NORMAL, "NodeNotReady", f"Node {key} status is now: NodeNotReady")
        await self._sync_taints(node, now)
        if ready != "True":
            await self._mark_pods_not_ready(key, now)
        # Look again just after the grace period would run out, unless a heartbeat comes first.
        return None if recheck is None else recheck + 0.01

    async def _write_conditions(self, node: Obj, conditions: list[Obj]) -> Obj:
        m = node["metadata"]
        patch = {"metadata": {"resourceVersion": m["resourceVersion"]}, "status": {"conditions": conditions}}
        return await self.client.patch(NODES, m["name"], patch, "merge", subresource="status")

    async def _sync_taints(self, node: Obj, now: float) -> None:
        wanted = desired_taints(node, now)
        if wanted == tt.node_taints(node):
            return
        m = node["metadata"]
        patch = {"metadata": {"resourceVersion": m["resourceVersion"]}, "spec": {"taints": wanted or None}}
        await self.client.patch(NODES, m["name"], patch, "merge")

    async def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        for pod in self.pods.by_index(NODE_NAME_INDEX, node_name):
            if not is_ready(pod):
                continue
            conditions = [dict(c) for c in pod["status"]["conditions"]]
            for cond in conditions:
                if cond.get("type") == "Ready":
                    cond.update(status="False", lastTransitionTime=rfc3339(now))
            m = pod["metadata"]
            patch = {"metadata": {"resourceVersion": m["resourceVersion"]}, "status": {"conditions": conditions}}
            try:
                await self.client.patch(PODS, m["name"], patch, "merge", m["namespace"], subresource="status")
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                continue
            self.recorder.event(pod, WARNING, "NodeNotReady", "Node is not ready")


def _node_ref(node: Obj) -> Obj:
    m = node["metadata"]
    return {"apiVersion": "v1", "kind": "Node", "name": m["name"], "uid": m.get("uid", "")}

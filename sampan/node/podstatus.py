"""Pod status as the kubelet reports it, from what a pod worker knows about its containers.
Pure logic: phase, conditions, container statuses; no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sampan.api.qos import pod_qos_class
from sampan.node.runtimes.base import ContainerState

Obj = dict[str, Any]


def rfc3339(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else datetime.now(UTC).timestamp(), UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Tracked:
    """One container of the pod as the worker sees it."""

    name: str
    init: bool = False
    sidecar: bool = False  # init container with restartPolicy Always
    ephemeral: bool = False  # added later for debugging: started once, never restarted, never ready
    id: str | None = None  # current runtime container
    state: ContainerState | None = None
    restart_count: int = 0
    last_terminated: Obj | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    backoff: float = 0.0  # the current CrashLoopBackOff delay
    backoff_until: float = 0.0  # loop time
    image: str = ""
    image_id: str = ""
    ready: bool = False
    started: bool = False  # startup probe passed (or none)
    message: str = ""  # the termination message of the current container
    exit_handled: bool = False
    backoff_reported: bool = False  # the BackOff event of the current back-off was sent
    pull_backoff: float = 0.0
    pull_backoff_until: float = 0.0
    pull_backoff_reported: bool = False

    def terminated(self) -> Obj | None:
        s = self.state
        if s is None or s.status != "exited":
            return None
        return terminated_state(s, self.message)

    @property
    def running(self) -> bool:
        return self.state is not None and self.state.status == "running"

    @property
    def exited(self) -> bool:
        return self.state is not None and self.state.status == "exited"

    @property
    def succeeded(self) -> bool:
        return self.exited and self.state is not None and self.state.exit_code == 0


def terminated_state(s: ContainerState, message: str = "") -> Obj:
    code = s.exit_code if s.exit_code is not None else -1
    reason = "OOMKilled" if s.oom_killed else ("Completed" if code == 0 else "Error")
    out: Obj = {"exitCode": code, "reason": reason, "startedAt": rfc3339(s.started_at) if s.started_at else None,
                "finishedAt": rfc3339(s.finished_at) if s.finished_at else None, "containerID": f"oci://{s.id}"}
    if message:
        out["message"] = message
    return out


def container_status(t: Tracked) -> Obj:
    out: Obj = {"name": t.name, "ready": t.ready, "restartCount": t.restart_count,
                "image": t.image, "imageID": t.image_id, "lastState": {}}
    if t.last_terminated:
        out["lastState"] = {"terminated": t.last_terminated}
    s = t.state
    if s is not None and s.status == "running" and not t.waiting_reason:
        out["state"] = {"running": {"startedAt": rfc3339(s.started_at)}}
        out["started"] = t.started
    elif s is not None and s.status == "exited" and not t.waiting_reason:
        out["state"] = {"terminated": terminated_state(s, t.message)}
        out["started"] = False
    else:
        waiting: Obj = {"reason": t.waiting_reason or "ContainerCreating"}
        if t.waiting_message:
            waiting["message"] = t.waiting_message
        out["state"] = {"waiting": waiting}
        out["started"] = False
    if s is not None:
        out["containerID"] = f"oci://{s.id}"
    return out


def pod_phase(restart_policy: str, inits: list[Tracked], apps: list[Tracked], initialized: bool) -> str:
    """The kubelet's getPhase for one snapshot of container states."""
    if not initialized:
        failed = any(t.exited and not t.succeeded and not t.sidecar for t in inits)
        return "Failed" if failed and restart_policy == "Never" else "Pending"
    running = waiting = stopped = succeeded = 0
    for t in apps:
        if t.running and not t.waiting_reason:
            running += 1
        elif t.exited and not t.waiting_reason:
            stopped += 1
            succeeded += 1 if t.succeeded else 0
        elif t.restart_count > 0 or t.last_terminated:
            stopped += 1  # crashed and waiting for its restart
            waiting += 0
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped == len(apps) and apps:
        if restart_policy == "Always":
            return "Running"
        if succeeded == stopped:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _cond(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    c: Obj = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None}
    if not ok and reason:
        c["reason"] = reason
    if not ok and message:
        c["message"] = message
    return c


def pod_conditions(sandbox_ready: bool, inits: list[Tracked], apps: list[Tracked], initialized: bool,
                   phase: str, scheduled: Obj | None) -> list[Obj]:
    not_ready = [t.name for t in apps if not t.ready]
    unready_msg = f"containers with unready status: [{' '.join(not_ready)}]"
    finished = phase in ("Succeeded", "Failed")
    init_pending = [t.name for t in inits if not (t.succeeded or (t.sidecar and t.started))]
    conds = [
        _cond("PodReadyToStartContainers", sandbox_ready and not finished),
        _cond("Initialized", initialized, "ContainersNotInitialized",
              f"containers with incomplete status: [{' '.join(init_pending)}]"),
        _cond("Ready", not not_ready and not finished, "PodCompleted" if finished else "ContainersNotReady",
              "" if finished else unready_msg),
        _cond("ContainersReady", not not_ready and not finished, "PodCompleted" if finished else "ContainersNotReady",
              "" if finished else unready_msg),
    ]
    conds.append(scheduled or {"type": "PodScheduled", "status": "True", "lastProbeTime": None})
    return conds


def _apply_readiness_gates(conds: list[Obj], spec: Obj, old: Obj) -> None:
    """Ready also needs every spec.readinessGates condition True, as the kubelet checks."""
    gates = [g.get("conditionType", "") for g in spec.get("readinessGates") or []]
    if not gates:
        return
    have = {c.get("type"): c.get("status") for c in old.get("conditions") or [] if isinstance(c, dict)}
    missing = [g for g in gates if g not in have]
    false = [g for g in gates if g in have and have[g] != "True"]
    ready = next(c for c in conds if c["type"] == "Ready")
    if ready["status"] != "True" or not (missing or false):
        return
    ready.update(status="False", reason="ReadinessGatesNotReady")
    ready["message"] = (f'corresponding condition of pod readiness gate "{missing[0]}" does not exist.' if missing
                        else f'the status of pod readiness gate "{false[0]}" is not "True", but {have[false[0]]}')


def keep_transitions(new: list[Obj], old: list[Obj], now: str) -> list[Obj]:
    """Unchanged conditions keep their lastTransitionTime; changed ones get ``now``."""
    before = {c.get("type"): c for c in old or [] if isinstance(c, dict)}
    for c in new:
        prev = before.get(c["type"])
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        elif "lastTransitionTime" not in c or prev is None or prev.get("status") != c["status"]:
            c["lastTransitionTime"] = now
    return new


@dataclass
class PodView:
    """Everything a status needs apart from the containers."""

    host_ip: str
    pod_ip: str = ""
    start_time: str = ""
    sandbox_ready: bool = False
    phase_override: str = ""  # admission failures and finished pods
    reason: str = ""
    message: str = ""
    extra: Obj = field(default_factory=dict)


def build_status(pod: Obj, view: PodView, inits: list[Tracked], apps: list[Tracked], initialized: bool,
                 ephemerals: Sequence[Tracked] = ()) -> Obj:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    policy = spec.get("restartPolicy", "Always")
    phase = view.phase_override or pod_phase(policy, inits, apps, initialized)
    scheduled = next((c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    conds = pod_conditions(view.sandbox_ready, inits, apps, initialized, phase, scheduled)
    _apply_readiness_gates(conds, spec, old)
    conds += [dict(c) for c in view.extra.get("conditions") or []]  # e.g. DisruptionTarget of an eviction
    # Conditions others own (readiness gates, DisruptionTarget ...) stay in the list.
    ours = {c["type"] for c in conds}
    conds += [dict(c) for c in old.get("conditions") or [] if isinstance(c, dict) and c.get("type") not in ours]
    status: Obj = {
        "phase": phase,
        "conditions": keep_transitions(conds, old.get("conditions") or [], rfc3339()),
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": view.start_time or old.get("startTime") or rfc3339(),
        "qosClass": old.get("qosClass") or qos_class(pod),
        "containerStatuses": [container_status(t) for t in apps],
    }
    if inits:
        status["initContainerStatuses"] = [container_status(t) for t in inits]
    if ephemerals:
        status["ephemeralContainerStatuses"] = [container_status(t) for t in ephemerals]
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    if view.reason:
        status["reason"] = view.reason
    if view.message:
        status["message"] = view.message
    return status


def qos_class(pod: Obj) -> str:
    return pod_qos_class(pod.get("spec") or {})

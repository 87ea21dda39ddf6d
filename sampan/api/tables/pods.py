"""Pods: the READY / STATUS / RESTARTS summary kubectl users read most."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .common import AGE, NAME, Column, Obj, deleting, dig, meta, name, register
from .humanize import human_duration, parse_time, since

COLUMNS = [
    NAME,
    Column("Ready", doc="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", doc="The aggregate status of the containers in this pod."),
    Column("Restarts", doc="The number of times the containers in this pod have been restarted "
                           "and when the last container in this pod has restarted."),
    AGE,
    Column("IP", doc=("core.v1.PodStatus", "podIP"), priority=1),
    Column("Node", doc=("core.v1.PodSpec", "nodeName"), priority=1),
    Column("Nominated Node", doc=("core.v1.PodStatus", "nominatedNodeName"), priority=1),
    Column("Readiness Gates", doc=("core.v1.PodSpec", "readinessGates"), priority=1),
]


def pod_conditions(pod: Obj) -> list[dict[str, str]]:
    """Row conditions mark finished pods, so clients can tell them apart."""
    phase = dig(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []


def _has_condition(pod: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in dig(pod, "status", "conditions", default=[]))


def _terminated_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def _last_finish(status: Obj) -> datetime | None:
    return parse_time(dig(status, "lastState", "terminated", "finishedAt"))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def pod_summary(pod: Obj) -> tuple[str, str, int, datetime | None]:
    """READY, STATUS, restart count and the time of the last restart."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    # Sidecars (init containers that keep running) count as regular containers.
    sidecars = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for index, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        last_restart = _later(last_restart, _last_finish(cs))
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar_restart = _later(last_sidecar_restart, _last_finish(cs))
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _has_condition(pod, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, _last_finish(cs))
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # Some containers finished while others still run: the pod is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(pod, "Ready") else "NotReady"

    if deleting(pod) and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting(pod) and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return f"{ready}/{total}", reason, restarts, last_restart


def _readiness_gates(pod: Obj) -> str:
    gates = dig(pod, "spec", "readinessGates", default=[])
    if not gates:
        return "<none>"
    conditions = dig(pod, "status", "conditions", default=[])
    passed = 0
    for gate in gates:
        for cond in conditions:
            if cond.get("type") == gate.get("conditionType"):
                passed += cond.get("status") == "True"
                break
    return f"{passed}/{len(gates)}"


@register("", "pods", COLUMNS, conditions=pod_conditions)
def pod_row(pod: Obj, now: datetime) -> list[Any]:
    ready, reason, restarts, last_restart = pod_summary(pod)
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    ip = (ips[0].get("ip") if ips else status.get("podIP")) or "<none>"
    return [
        name(pod), ready, reason, restarts_text, since(meta(pod).get("creationTimestamp"), now),
        ip,
        dig(pod, "spec", "nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        _readiness_gates(pod),
    ]

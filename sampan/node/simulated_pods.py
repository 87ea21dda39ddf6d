"""What a simulated kubelet reports for a pod: the status of a pod that runs, of one that
finished, and the pod addresses handed out from each node's pod CIDR. Pure logic, no I/O."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

DURATION_ANNOTATION = "sampan.dev/simulate-duration"
EXIT_CODE_ANNOTATION = "sampan.dev/simulate-exit-code"

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def now_time() -> str:
    """metav1.Time: RFC 3339 with second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``2s``, ``1m30s``, ``500ms``) or a plain number of seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


def normalized_image(image: str) -> str:
    """The fully qualified reference a container runtime reports (``docker.io/library/nginx:latest``)."""
    name, at, digest = image.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if at:
        return f"{name}@{digest}"
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def image_id(image: str) -> str:
    ref = normalized_image(image)
    if "@" in ref:
        return ref
    repo = ref.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def new_container_id() -> str:
    return f"containerd://{secrets.token_hex(32)}"


def _containers(pod: Obj, group: str) -> list[Obj]:
    return [c for c in (pod.get("spec") or {}).get(group) or [] if isinstance(c, dict)]


@dataclass
class PodRecord:
    """What the agent remembers about a pod it runs."""

    uid: str
    ip: str
    started_at: str  # RFC 3339, also the pod's startTime
    started_mono: float  # loop time when the containers started (drives completion)
    container_ids: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    running_since: str = ""  # when the current containers started (differs from started_at after a restart)
    last_exit: Obj | None = None  # lastState.terminated of the most recent restart

    def container_id(self, name: str) -> str:
        found = self.container_ids.get(name)
        if found is None:
            found = self.container_ids[name] = new_container_id()
        return found


def completion_plan(pod: Obj, job_duration: float) -> tuple[float, int] | None:
    """(seconds to run, exit code) for pods that finish, None for pods that run until deleted.

    Job pods finish after ``job_duration`` (or the duration annotation); other pods finish only
    if they may (restartPolicy Never/OnFailure) and carry the duration annotation."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    owned_by_job = any(
        ref.get("kind") == "Job" and ref.get("controller") for ref in meta.get("ownerReferences") or ()
    )
    may_finish = spec.get("restartPolicy") in ("Never", "OnFailure")
    if not may_finish or not (owned_by_job or DURATION_ANNOTATION in annotations):
        return None
    duration = job_duration
    if DURATION_ANNOTATION in annotations:
        try:
            duration = parse_duration(str(annotations[DURATION_ANNOTATION]))
        except ValueError:
            pass
    try:
        exit_code = int(annotations.get(EXIT_CODE_ANNOTATION, 0))
    except (TypeError, ValueError):
        exit_code = 1
    return duration, exit_code


def _condition(type_: str, status: bool, when: str, reason: str = "", message: str = "") -> Obj:
    cond: Obj = {"type": type_, "status": "True" if status else "False", "lastProbeTime": None,
                 "lastTransitionTime": when}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _keep_transition(conditions: list[Obj], old: list[Obj], now: str) -> list[Obj]:
    """Unchanged conditions keep their lastTransitionTime and flipped ones get ``now``, as the
    kubelet's status manager does."""
    previous = {c.get("type"): c for c in old if isinstance(c, dict)}
    for cond in conditions:
        before = previous.get(cond["type"])
        if before is None:
            continue
        if before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            cond["lastTransitionTime"] = before["lastTransitionTime"]
        elif before.get("status") != cond["status"]:
            cond["lastTransitionTime"] = now
    return conditions


def _base_status(pod: Obj, record: PodRecord, host_ip: str) -> Obj:
    status = pod.get("status") or {}
    out: Obj = {
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": record.ip,
        "podIPs": [{"ip": record.ip}],
        "startTime": record.started_at,
    }
    if status.get("qosClass"):
        out["qosClass"] = status["qosClass"]
    return out


def _gates_ready(pod: Obj) -> tuple[bool, str]:
    """Readiness gates: Ready needs each gate's condition to be True."""
    conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        kind = (gate or {}).get("conditionType", "")
        cond = conditions.get(kind)
        if cond is None:
            return False, f'corresponding condition of pod readiness gate "{kind}" does not exist.'
        if cond.get("status") != "True":
            return False, f'the status of pod readiness gate "{kind}" is not "True", but {cond.get("status")}'
    return True, ""


def _init_statuses(pod: Obj, record: PodRecord, when: str) -> list[Obj]:
    out = []
    for c in _containers(pod, "initContainers"):
        cid = record.container_id(c["name"])
        entry: Obj = {
            "name": c["name"], "image": normalized_image(c.get("image", "")), "imageID": image_id(c.get("image", "")),
            "containerID": cid, "restartCount": 0, "lastState": {},
        }
        if c.get("restartPolicy") == "Always":  # a sidecar keeps running
            entry.update(ready=True, started=True, state={"running": {"startedAt": when}})
        else:
            entry.update(ready=True, started=False, state={"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": when, "finishedAt": when, "containerID": cid}})
        out.append(entry)
    return out


def _extra_conditions(pod: Obj, when: str) -> list[Obj]:
    """Conditions other components own (PodScheduled, DisruptionTarget, readiness gates) stay;
    a pod bound without the scheduler gets PodScheduled from the kubelet, as upstream."""
    mine = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"}
    others = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") not in mine]
    if not any(c.get("type") == "PodScheduled" for c in others):
        others.insert(0, _condition("PodScheduled", True, when))
    return others


def running_status(pod: Obj, record: PodRecord, host_ip: str, now: str) -> Obj:
    when = record.running_since or record.started_at
    gates_ok, gate_message = _gates_ready(pod)
    old_conditions = (pod.get("status") or {}).get("conditions") or []
    conditions = [
        _condition("PodReadyToStartContainers", True, when),
        _condition("Initialized", True, when),
        _condition("Ready", gates_ok, when, "" if gates_ok else "ReadinessGatesNotReady", gate_message),
        _condition("ContainersReady", True, when),
    ]
    statuses = []
    for c in _containers(pod, "containers"):
        entry: Obj = {
            "name": c["name"], "image": normalized_image(c.get("image", "")), "imageID": image_id(c.get("image", "")),
            "containerID": record.container_id(c["name"]), "ready": True, "started": True,
            "restartCount": record.restarts, "state": {"running": {"startedAt": when}},
            "lastState": {"terminated": record.last_exit} if record.last_exit else {},
        }
        statuses.append(entry)
    status = _base_status(pod, record, host_ip)
    status.update(
        phase="Running",
        conditions=_keep_transition(conditions, old_conditions, now) + _extra_conditions(pod, record.started_at),
        containerStatuses=statuses,
    )
    inits = _init_statuses(pod, record, when)
    if inits:
        status["initContainerStatuses"] = inits
    return status


def finished_status(pod: Obj, record: PodRecord, host_ip: str, now: str, exit_code: int) -> Obj:
    phase = "Succeeded" if exit_code == 0 else "Failed"
    reason = "Completed" if exit_code == 0 else "Error"
    old_conditions = (pod.get("status") or {}).get("conditions") or []
    conditions = [
        _condition("PodReadyToStartContainers", False, now),
        _condition("Initialized", True, record.started_at),
        _condition("Ready", False, now, "PodCompleted"),
        _condition("ContainersReady", False, now, "PodCompleted"),
    ]
    statuses = []
    for c in _containers(pod, "containers"):
        cid = record.container_id(c["name"])
        statuses.append({
            "name": c["name"], "image": normalized_image(c.get("image", "")), "imageID": image_id(c.get("image", "")),
            "containerID": cid, "ready": False, "started": False, "restartCount": record.restarts,
            "state": {"terminated": {"exitCode": exit_code, "reason": reason,
                                     "startedAt": record.running_since or record.started_at,
                                     "finishedAt": now, "containerID": cid}},
            "lastState": {"terminated": record.last_exit} if record.last_exit else {},
        })
    status = _base_status(pod, record, host_ip)
    status.update(
        phase=phase,
        conditions=_keep_transition(conditions, old_conditions, now) + _extra_conditions(pod, record.started_at),
        containerStatuses=statuses,
    )
    inits = _init_statuses(pod, record, record.started_at)
    if inits:
        status["initContainerStatuses"] = inits
    return status


def signature(status: Obj) -> tuple[Any, ...]:
    """The parts of a status whose difference means the agent must write it again."""
    conditions = tuple(sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or []))
    containers = tuple(
        (c.get("name"), c.get("ready"), tuple(sorted((c.get("state") or {}).keys())), c.get("restartCount"))
        for c in status.get("containerStatuses") or []
    )
    return status.get("phase"), status.get("podIP"), status.get("hostIP"), conditions, containers


class PodAddresses:
    """Hands out pod IPs from one node's pod CIDR (skipping the network and gateway addresses)."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._by_key: dict[str, str] = {}
        self._used: set[str] = set()
        self._next = 2

    def reserve(self, key: str, ip: str) -> None:
        self._by_key[key] = ip
        self._used.add(ip)

    def get(self, key: str) -> str:
        found = self._by_key.get(key)
        if found is not None:
            return found
        size = self.network.num_addresses
        lo, hi = (2, size - 2) if size >= 4 else (0, size - 1)
        span = hi - lo + 1
        for step in range(span):
            offset = lo + (self._next - lo + step) % span
            ip = str(self.network[offset])
            if ip not in self._used:
                self._next = offset + 1
                self.reserve(key, ip)
                return ip
        # More pods than the block holds: share an address rather than fail the pod.
        ip = str(self.network[lo])
        self._by_key[key] = ip
        return ip

    def release(self, key: str) -> None:
        ip = self._by_key.pop(key, None)
        if ip is not None and ip not in self._by_key.values():
            self._used.discard(ip)

"""Node-pressure eviction, the pure part (like the kubelet's eviction manager): signals,
thresholds (``--eviction-hard``/``--eviction-soft`` syntax), which thresholds are met and for
how long, the node conditions they give, how pods are ranked for eviction, which pods broke their
own local storage limits, and the message an evicted pod gets. No I/O here:
sampan/node/evictionmanager.py observes and acts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sampan.api.quantity import BINARY_SI, DECIMAL_SI, Quantity, parse_quantity
from sampan.api.quota import pod_requests_limits

Obj = dict[str, Any]

MEMORY_AVAILABLE = "memory.available"
NODEFS_AVAILABLE = "nodefs.available"
NODEFS_INODES_FREE = "nodefs.inodesFree"
IMAGEFS_AVAILABLE = "imagefs.available"
IMAGEFS_INODES_FREE = "imagefs.inodesFree"
PID_AVAILABLE = "pid.available"
SIGNALS = (MEMORY_AVAILABLE, NODEFS_AVAILABLE, NODEFS_INODES_FREE, IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE,
           PID_AVAILABLE)
# The kubelet's defaults on Linux.
DEFAULT_HARD = "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%"
DEFAULT_TRANSITION_PERIOD = 300.0
DEFAULT_MONITORING_INTERVAL = 10.0

MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE = "MemoryPressure", "DiskPressure", "PIDPressure"
CONDITION_OF = {MEMORY_AVAILABLE: MEMORY_PRESSURE, NODEFS_AVAILABLE: DISK_PRESSURE, NODEFS_INODES_FREE: DISK_PRESSURE,
                IMAGEFS_AVAILABLE: DISK_PRESSURE, IMAGEFS_INODES_FREE: DISK_PRESSURE, PID_AVAILABLE: PID_PRESSURE}
# The resource each signal starves (what the eviction message and event name).
RESOURCE_OF = {MEMORY_AVAILABLE: "memory", NODEFS_AVAILABLE: "ephemeral-storage",
               IMAGEFS_AVAILABLE: "ephemeral-storage", NODEFS_INODES_FREE: "inodes", IMAGEFS_INODES_FREE: "inodes",
               PID_AVAILABLE: "pids"}
DISK_SIGNALS = frozenset({NODEFS_AVAILABLE, NODEFS_INODES_FREE, IMAGEFS_AVAILABLE, IMAGEFS_INODES_FREE})
BYTE_SIGNALS = frozenset({MEMORY_AVAILABLE, NODEFS_AVAILABLE, IMAGEFS_AVAILABLE})
# Node status events when a condition flips (reason while True, reason when False again).
CONDITION_EVENTS = {MEMORY_PRESSURE: ("NodeHasInsufficientMemory", "NodeHasSufficientMemory"),
                    DISK_PRESSURE: ("NodeHasDiskPressure", "NodeHasNoDiskPressure"),
                    PID_PRESSURE: ("NodeHasInsufficientPID", "NodeHasSufficientPID")}
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Threshold:
    """``signal < value``: an absolute quantity or a fraction of the signal's capacity."""

    signal: str
    quantity: Quantity | None = None
    percentage: float | None = None  # 0..1
    grace_period: float = 0.0  # soft thresholds only
    soft: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        return self.signal, self.soft

    def amount(self, capacity: int) -> int:
        if self.quantity is not None:
            return int(self.quantity.value())
        return int(capacity * (self.percentage or 0.0))

    def describe(self, capacity: int) -> str:
        """The threshold as the eviction message says it (a percentage as the quantity it is)."""
        if self.quantity is not None:
            return str(self.quantity)
        return format_amount(self.signal, self.amount(capacity))


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


def format_amount(signal: str, amount: int) -> str:
    return str(Quantity(Fraction(amount), BINARY_SI if signal in BYTE_SIGNALS else DECIMAL_SI))


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``90s``, ``1m30s``, ``500ms``)."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        if text.replace(".", "", 1).isdigit():
            return float(text)  # plain seconds
        raise ValueError(f"invalid duration {text!r}")
    return total


def _pairs(text: str, sep: str) -> list[tuple[str, str]]:
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        signal, found, value = item.partition(sep)
        if not found:
            raise ValueError(f"invalid eviction threshold {item!r}: expected SIGNAL{sep}VALUE")
        signal = signal.strip()
        if signal not in SIGNALS:
            raise ValueError(f"unsupported eviction signal {signal}")
        if signal in (s for s, _ in out):
            raise ValueError(f"found duplicate eviction threshold for signal {signal}")
        out.append((signal, value.strip()))
    return out


def parse_thresholds(text: str, grace_periods: str = "", soft: bool = False) -> list[Threshold]:
    """``memory.available<100Mi,nodefs.available<10%``; soft ones need a grace period each
    (``memory.available=1m30s``)."""
    graces = {s: parse_duration(v) for s, v in _pairs(grace_periods, "=")}
    out: list[Threshold] = []
    for signal, value in _pairs(text, "<"):
        if value.endswith("%"):
            try:
                pct = float(value[:-1])
            except ValueError:
                raise ValueError(f"invalid eviction threshold percentage {value!r}") from None
            if not 0 <= pct <= 100:
                raise ValueError(f"eviction percentage threshold {signal} must be >= 0% and <= 100%: {value}")
            threshold = Threshold(signal, percentage=pct / 100)
        else:
            try:
                quantity = parse_quantity(value)
            except ValueError:
                raise ValueError(f"invalid eviction threshold quantity {value!r} for {signal}") from None
            if quantity.amount < 0:
                raise ValueError(f"eviction threshold {signal} must be positive: {value}")
            threshold = Threshold(signal, quantity=quantity)
        if soft:
            if signal not in graces:
                raise ValueError(f"grace period must be specified for the soft eviction threshold {signal}")
            threshold = Threshold(signal, threshold.quantity, threshold.percentage, graces[signal], soft=True)
        out.append(threshold)
    if soft:
        extra = set(graces) - {t.signal for t in out}
        if extra:
            names = ", ".join(sorted(extra))
            raise ValueError(f"grace period specified for a signal without a soft threshold: {names}")
    return out


@dataclass
class EvictionConfig:
    hard: list[Threshold] = field(default_factory=lambda: parse_thresholds(DEFAULT_HARD))
    soft: list[Threshold] = field(default_factory=list)
    pressure_transition_period: float = DEFAULT_TRANSITION_PERIOD
    monitoring_interval: float = DEFAULT_MONITORING_INTERVAL
    max_pod_grace_period: int = 0  # soft evictions kill with min(this, the pod's own grace period)

    @classmethod
    def from_flags(cls, hard: str | None = None, soft: str | None = None, soft_grace_period: str | None = None,
                   pressure_transition_period: str | None = None, monitoring_interval: str | None = None,
                   max_pod_grace_period: int = 0) -> EvictionConfig:
        """From the command line; ``--eviction-hard`` replaces all the defaults (an empty value: none).
        Raises ValueError naming what is wrong."""
        config = cls(max_pod_grace_period=max(0, max_pod_grace_period))
        if hard is not None:
            config.hard = parse_thresholds(hard)
        if soft or soft_grace_period:
            config.soft = parse_thresholds(soft or "", soft_grace_period or "", soft=True)
        if pressure_transition_period is not None:
            config.pressure_transition_period = parse_duration(pressure_transition_period)
        if monitoring_interval is not None:
            config.monitoring_interval = parse_duration(monitoring_interval)
            if config.monitoring_interval <= 0:
                raise ValueError("the eviction monitoring interval must be more than 0")
        return config

    @property
    def thresholds(self) -> list[Threshold]:
        return self.hard + self.soft


def allocatable(capacity: dict[str, str], hard: list[Threshold]) -> dict[str, str]:
    """Capacity less what the hard memory.available and nodefs.available thresholds keep aside
    (the kubelet's allocatable without system/kube reservations)."""
    out = dict(capacity)
    for resource, signal in (("memory", MEMORY_AVAILABLE), ("ephemeral-storage", NODEFS_AVAILABLE)):
        threshold = next((t for t in hard if t.signal == signal), None)
        if resource not in capacity:
            continue
        try:
            total = int(parse_quantity(capacity[resource]).value())
        except ValueError:
            continue
        reserve = threshold.amount(total) if threshold is not None else 0
        out[resource] = f"{max(0, total - reserve) // 1024}Ki"
    return out


def is_met(threshold: Threshold, observations: dict[str, Observation]) -> bool:
    seen = observations.get(threshold.signal)
    return seen is not None and seen.available < threshold.amount(seen.capacity)


@dataclass
class Decision:
    conditions: set[str]  # node conditions that are True (held through the transition period)
    thresholds: list[Threshold]  # met for at least their grace period: act on the first
    met: list[Threshold]  # met now, grace period or not


class EvictionState:
    """What was seen over time: when each threshold was first met and when each condition was
    last seen, so soft thresholds wait their grace period and conditions do not flap."""

    def __init__(self, config: EvictionConfig) -> None:
        self.config = config
        self.first_met: dict[tuple[str, bool], float] = {}
        self.condition_seen: dict[str, float] = {}

    def update(self, observations: dict[str, Observation], now: float) -> Decision:
        met = [t for t in self.config.thresholds if is_met(t, observations)]
        self.first_met = {t.key: self.first_met.get(t.key, now) for t in met}
        for t in met:
            self.condition_seen[CONDITION_OF[t.signal]] = now
        period = self.config.pressure_transition_period
        self.condition_seen = {c: at for c, at in self.condition_seen.items() if now - at < period or at == now}
        ready = [t for t in met if now - self.first_met[t.key] >= t.grace_period]
        ready.sort(key=lambda t: t.signal != MEMORY_AVAILABLE)  # memory first, like upstream
        return Decision(set(self.condition_seen), ready, met)


# -- pods ------------------------------------------------------------------------------------
@dataclass
class PodUsage:
    """What one pod uses; per-container figures feed the eviction message."""

    pod: Obj
    memory: int = 0  # working set bytes
    storage: int = 0  # bytes: writable layers, logs and local volumes
    inodes: int = 0
    processes: int = 0
    container_memory: dict[str, int] = field(default_factory=dict)
    container_storage: dict[str, int] = field(default_factory=dict)  # writable layer + logs


def pod_request(pod: Obj, resource: str) -> int:
    """The pod's request of a resource: its containers' sum, or its largest init container's."""
    spec = pod.get("spec") or {}

    def req(c: Obj) -> int:
        value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        try:
            return int(parse_quantity(value).value()) if value is not None else 0
        except ValueError:
            return 0

    total = sum(req(c) for c in spec.get("containers") or [])
    return max([total, *(req(c) for c in spec.get("initContainers") or [])])


def container_request(pod: Obj, name: str, resource: str) -> Quantity:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == name:
            value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if value is not None:
                try:
                    return parse_quantity(value)
                except ValueError:
                    break
    return Quantity(0)


def priority(pod: Obj) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def is_critical(pod: Obj) -> bool:
    """Static, mirror and system-critical pods are never evicted."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    source = annotations.get("kubernetes.io/config.source")
    if "kubernetes.io/config.mirror" in annotations or (source and source != "api"):
        return True
    return priority(pod) >= SYSTEM_CRITICAL_PRIORITY


def rank(resource: str, usages: list[PodUsage]) -> list[PodUsage]:
    """Eviction order for a starved resource: pods using more than they requested first, then
    lower priority first, then the most usage above the request."""
    if resource == "pids":
        return sorted(usages, key=lambda u: (priority(u.pod), -u.processes))
    if resource == "inodes":
        return sorted(usages, key=lambda u: (u.inodes <= 0, priority(u.pod), -u.inodes))
    attr = "memory" if resource == "memory" else "storage"

    def key(u: PodUsage) -> tuple[bool, int, int]:
        used, requested = getattr(u, attr), pod_request(u.pod, resource)
        return used <= requested, priority(u.pod), -(used - requested)

    return sorted(usages, key=key)


def eviction_message(threshold: Threshold, observation: Observation | None, usage: PodUsage) -> str:
    """``The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi.
    Container x was using 300Mi, request is 0, has larger consumption of memory.``"""
    resource = RESOURCE_OF[threshold.signal]
    message = f"The node was low on resource: {resource}. "
    if observation is not None:
        message += (f"Threshold quantity: {threshold.describe(observation.capacity)}, "
                    f"available: {format_amount(threshold.signal, observation.available)}. ")
    per_container = {"memory": usage.container_memory, "ephemeral-storage": usage.container_storage}.get(resource, {})
    for c in (usage.pod.get("spec") or {}).get("containers") or []:
        used = per_container.get(c.get("name", ""))
        if used is None:
            continue
        request = container_request(usage.pod, c["name"], resource)
        if used > request.value():
            message += (f"Container {c['name']} was using {Quantity(Fraction(used), BINARY_SI)}, "
                        f"request is {request}, has larger consumption of {resource}. ")
    return message.rstrip()


# -- local ephemeral storage limits (checked every round, before the node's thresholds) -------
STORAGE = "ephemeral-storage"


def _limit(values: Any) -> Quantity | None:
    value = (values or {}).get(STORAGE) if isinstance(values, dict) else None
    try:
        quantity = parse_quantity(value) if value is not None else None
    except ValueError:
        return None
    return quantity if quantity is not None and quantity.amount > 0 else None


def disk_empty_dirs_with_limits(pod: Obj) -> dict[str, Quantity]:
    """The pod's disk-backed emptyDir volumes that set a sizeLimit (a memory-backed one is a
    tmpfs of that size: it cannot grow past it)."""
    out = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        ed = vol.get("emptyDir")
        if isinstance(ed, dict) and ed.get("medium") != "Memory":
            limit = _limit({STORAGE: ed.get("sizeLimit")})
            if limit is not None:
                out[vol.get("name", "")] = limit
    return out


def container_storage_limits(pod: Obj) -> dict[str, Quantity]:
    out = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        limit = _limit((c.get("resources") or {}).get("limits"))
        if limit is not None:
            out[c.get("name", "")] = limit
    return out


def has_storage_limits(pod: Obj) -> bool:
    """Whether the kubelet would watch this pod's local storage against limits."""
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    return bool(disk_empty_dirs_with_limits(pod)) or any(
        _limit((c.get("resources") or {}).get("limits")) is not None for c in containers)


def storage_limit_violation(usage: PodUsage, empty_dir_usage: dict[str, int]) -> str | None:
    """The eviction message when the pod broke one of its local storage limits, in the
    kubelet's order: an emptyDir over its sizeLimit, the whole pod over its containers'
    limits together, one container (writable layer and logs) over its own limit."""
    for name, limit in disk_empty_dirs_with_limits(usage.pod).items():
        if empty_dir_usage.get(name, 0) > limit.value():
            return f'Usage of EmptyDir volume "{name}" exceeds the limit "{limit}".'
    pod_limit = _limit(pod_requests_limits(usage.pod)[1])
    if pod_limit is not None and usage.storage > pod_limit.value():
        return f"Pod ephemeral local storage usage exceeds the total limit of containers {pod_limit}."
    for name, limit in container_storage_limits(usage.pod).items():
        if usage.container_storage.get(name, 0) > limit.value():
            return f'Container {name} exceeded its local ephemeral storage limit "{limit}".'
    return None


def grace_period(threshold: Threshold, pod: Obj, max_pod_grace_period: int) -> int:
    """Hard thresholds kill at once; soft ones allow up to ``--eviction-max-pod-grace-period``."""
    if not threshold.soft:
        return 0
    own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return min(max_pod_grace_period, int(own)) if own is not None else max_pod_grace_period


def admission_refusal(conditions: set[str], pod: Obj, qos: str) -> tuple[str, str] | None:
    """New pods on a node under pressure (as the kubelet admits): none under disk or PID
    pressure, no BestEffort pods under memory pressure unless they tolerate its taint; critical
    pods always."""
    if not conditions or is_critical(pod):
        return None
    order = (MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE)
    blocking = [c for c in order if c in conditions]
    if MEMORY_PRESSURE in blocking and (qos != "BestEffort" or _tolerates_memory_pressure(pod)):
        blocking.remove(MEMORY_PRESSURE)
    if not blocking:
        return None
    return "Evicted", f"The node had condition: [{' '.join(blocking)}]. "


def _tolerates_memory_pressure(pod: Obj) -> bool:
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        key = t.get("key")
        key_ok = key == "node.kubernetes.io/memory-pressure" or (not key and t.get("operator") == "Exists")
        if key_ok and t.get("effect") in (None, "", "NoSchedule"):
            return True
    return False

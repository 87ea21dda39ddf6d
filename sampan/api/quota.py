"""Quota accounting shared by the ResourceQuota admission plugin and controller: how much
of each quota resource one object uses, and which objects a quota's scopes cover."""

from __future__ import annotations

import time
from typing import Any

from sampan.api.quantity import Quantity, parse_quantity
from sampan.api.times import parse_time

Obj = dict[str, Any]
Usage = dict[str, Quantity]

COMPUTE = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
# The plain object counts upstream names without "count/".
_LEGACY_COUNTS = {
    "pods": ("", "pods"),
    "services": ("", "services"),
    "configmaps": ("", "configmaps"),
    "secrets": ("", "secrets"),
    "persistentvolumeclaims": ("", "persistentvolumeclaims"),
    "replicationcontrollers": ("", "replicationcontrollers"),
    "resourcequotas": ("", "resourcequotas"),
}
_POD_RESOURCE_PREFIXES = ("requests.", "limits.")
_POD_PLAIN = frozenset({"cpu", "memory", "ephemeral-storage"})
_POD_SCOPES = frozenset({"Terminating", "NotTerminating", "BestEffort", "NotBestEffort"})


def count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def resource_of(name: str) -> tuple[str, str] | None:
    """The (group, plural) whose objects a quota resource name counts, if any."""
    if name in _LEGACY_COUNTS:
        return _LEGACY_COUNTS[name]
    if name.startswith("count/"):
        plural, _, group = name[len("count/") :].partition(".")
        return group, plural
    if name.startswith("services."):
        return "", "services"
    if name == "requests.storage" or ".storageclass.storage.k8s.io/" in name:
        return "", "persistentvolumeclaims"
    if name.startswith(_POD_RESOURCE_PREFIXES) or name in _POD_PLAIN or name.startswith("hugepages-"):
        return "", "pods"
    return None


def _quantities(values: Any) -> Usage:
    out: Usage = {}
    for key, value in (values or {}).items() if isinstance(values, dict) else ():
        try:
            out[key] = parse_quantity(value)
        except ValueError:
            continue
    return out


def add(a: Usage, b: Usage) -> Usage:
    out = dict(a)
    for key, value in b.items():
        out[key] = out[key] + value if key in out else value
    return out


def subtract(a: Usage, b: Usage) -> Usage:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, Quantity(0)) - value
    return out


def _max(a: Usage, b: Usage) -> Usage:
    out = dict(a)
    for key, value in b.items():
        if key not in out or out[key] < value:
            out[key] = value
    return out


def _containers(spec: Obj, field: str) -> list[Obj]:
    return [c for c in spec.get(field) or [] if isinstance(c, dict)]


def pod_requests_limits(pod: Obj) -> tuple[Usage, Usage]:
    """The pod's effective requests and limits: the sum over containers, at least the
    largest init container (restartable init containers add up like containers)."""
    spec = pod.get("spec") or {}
    totals: list[Usage] = []
    for kind in ("requests", "limits"):
        total: Usage = {}
        for c in _containers(spec, "containers"):
            total = add(total, _quantities((c.get("resources") or {}).get(kind)))
        sidecars: Usage = {}
        init_max: Usage = {}
        for c in _containers(spec, "initContainers"):
            own = _quantities((c.get("resources") or {}).get(kind))
            if c.get("restartPolicy") == "Always":
                total = add(total, own)
                sidecars = add(sidecars, own)
                init_max = _max(init_max, sidecars)
            else:
                init_max = _max(init_max, add(own, sidecars))
        overhead = _quantities(spec.get("overhead"))
        totals.append(add(_max(total, init_max), overhead))
    return totals[0], totals[1]


def pod_counts(pod: Obj, now: float | None = None) -> bool:
    """Upstream's QuotaV1Pod: finished pods, and deleted pods past their grace, use nothing."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    m = pod.get("metadata") or {}
    deleted = parse_time(m.get("deletionTimestamp"))
    if deleted is not None:
        grace = float(m.get("deletionGracePeriodSeconds") or 0)
        return (time.time() if now is None else now) <= deleted + grace
    return True


def usage(group: str, plural: str, obj: Obj) -> Usage:
    """What one object uses of every quota resource it counts against."""
    out: Usage = {count_name(group, plural): Quantity(1)}
    if group:
        return out
    spec = obj.get("spec") or {}
    if plural == "pods":
        if not pod_counts(obj):
            return out
        out["pods"] = Quantity(1)
        requests, limits = pod_requests_limits(obj)
        for name, value in requests.items():
            out[f"requests.{name}"] = value
            if name in _POD_PLAIN:
                out[name] = value
        for name, value in limits.items():
            out[f"limits.{name}"] = value
    elif plural == "services":
        out["services"] = Quantity(1)
        ports = len([p for p in spec.get("ports") or [] if isinstance(p, dict)])
        stype = spec.get("type", "ClusterIP")
        if stype == "NodePort":
            out["services.nodeports"] = Quantity(ports)
        elif stype == "LoadBalancer":
            out["services.loadbalancers"] = Quantity(1)
            if spec.get("allocateLoadBalancerNodePorts", True) is not False:
                out["services.nodeports"] = Quantity(ports)
    elif plural == "persistentvolumeclaims":
        out["persistentvolumeclaims"] = Quantity(1)
        storage = _quantities((spec.get("resources") or {}).get("requests")).get("storage")
        if storage is not None:
            out["requests.storage"] = storage
        cls = spec.get("storageClassName")
        if cls:
            out[f"{cls}.storageclass.storage.k8s.io/persistentvolumeclaims"] = Quantity(1)
            if storage is not None:
                out[f"{cls}.storageclass.storage.k8s.io/requests.storage"] = storage
    elif plural in _LEGACY_COUNTS:
        out[plural] = Quantity(1)
    return out


def _best_effort(pod: Obj) -> bool:
    for c in _containers(pod.get("spec") or {}, "containers") + _containers(pod.get("spec") or {}, "initContainers"):
        res = c.get("resources") or {}
        if res.get("requests") or res.get("limits"):
            return False
    return True


def _scope_matches(scope: str, pod: Obj) -> bool:
    terminating = (pod.get("spec") or {}).get("activeDeadlineSeconds") is not None
    return {
        "Terminating": terminating,
        "NotTerminating": not terminating,
        "BestEffort": _best_effort(pod),
        "NotBestEffort": not _best_effort(pod),
    }.get(scope, False)


def quota_matches(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """Whether the quota's scopes (and scope selector) cover the object."""
    spec = quota.get("spec") or {}
    scopes = list(spec.get("scopes") or [])
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        scope, op = expr.get("scopeName"), expr.get("operator")
        if op == "Exists":
            scopes.append(scope)
        elif op == "DoesNotExist" and scope in _POD_SCOPES:
            scopes.append({"Terminating": "NotTerminating", "BestEffort": "NotBestEffort"}.get(scope, scope))
        elif scope == "PriorityClass" and (group, plural) == ("", "pods"):
            prio = (obj.get("spec") or {}).get("priorityClassName", "")
            values = expr.get("values") or []
            if (op == "In" and prio not in values) or (op == "NotIn" and prio in values):
                return False
    if not scopes:
        return True
    if (group, plural) != ("", "pods"):
        return False
    return all(s == "PriorityClass" or _scope_matches(s, obj) for s in scopes)


def missing_compute(pod: Obj, required: set[str]) -> dict[str, list[str]]:
    """Compute resources the quota tracks that a container does not state (resource -> containers)."""
    wanted = required & COMPUTE
    missing: dict[str, list[str]] = {}
    spec = pod.get("spec") or {}
    for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
        res = c.get("resources") or {}
        stated: set[str] = set()
        for name in _quantities(res.get("requests")):
            if name in ("cpu", "memory"):
                stated |= {name, f"requests.{name}"}
        for name in _quantities(res.get("limits")):
            if name in ("cpu", "memory"):
                stated.add(f"limits.{name}")
        for name in sorted(wanted - stated):
            missing.setdefault(name, []).append(str(c.get("name", "")))
    return missing


def pretty(values: Usage) -> str:
    return ",".join(f"{k}={values[k]}" for k in sorted(values))


def parse(values: Any) -> Usage:
    return _quantities(values)


def render(values: Usage) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(values.items())}

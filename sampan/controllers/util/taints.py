"""Node taints and pod tolerations as upstream matches them."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

NO_EXECUTE = "NoExecute"
NO_SCHEDULE = "NoSchedule"


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """An empty key with ``Exists`` tolerates every taint; an empty effect matches every effect."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def matching_tolerations(tolerations: list[Obj], taints: list[Obj]) -> list[Obj] | None:
    """For each taint the first toleration that tolerates it; None if some taint is not tolerated."""
    used: list[Obj] = []
    for taint in taints:
        found = next((t for t in tolerations if tolerates(t, taint)), None)
        if found is None:
            return None
        used.append(found)
    return used


def min_toleration_seconds(used: list[Obj]) -> float | None:
    """How long a pod may stay given the tolerations it uses: None means forever, 0 at once."""
    if not used:
        return 0.0
    least: float | None = None
    for toleration in used:
        seconds = toleration.get("tolerationSeconds")
        if seconds is None:
            continue
        if seconds <= 0:
            return 0.0
        least = seconds if least is None else min(least, seconds)
    return None if least is None else float(least)


def pod_tolerations(pod: Obj) -> list[Obj]:
    return [t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, dict)]


def node_taints(node: Obj | None, effect: str | None = None) -> list[Obj]:
    taints = [t for t in ((node or {}).get("spec") or {}).get("taints") or [] if isinstance(t, dict)]
    return [t for t in taints if t.get("effect") == effect] if effect else taints


def same_taint(a: Obj, b: Obj) -> bool:
    """Taints are identified by key and effect."""
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")

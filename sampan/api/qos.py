"""A pod's QoS class (status.qosClass), computed like upstream's GetPodQOS."""

from __future__ import annotations

from typing import Any

from sampan.api.quantity import parse_quantity


def _q(value: Any) -> Any:
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return str(value)


def same_amount(a: Any, b: Any) -> bool:
    """Equal as quantities (so 1 == 1000m); values that do not parse compare as text."""
    return bool(_q(a) == _q(b))


def pod_qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed: every container limits cpu and memory, with requests (if given) equal to
    the limits; BestEffort: no container requests or limits anything; else Burstable."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set, guaranteed = False, bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        any_set = any_set or bool(req) or bool(lim)
        for name in ("cpu", "memory"):
            if name not in lim or (name in req and not same_amount(req[name], lim[name])):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if any_set else "BestEffort"

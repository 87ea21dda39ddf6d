"""Which pods a scale-down removes first, in upstream's order (ActivePodsWithRanks)."""

from __future__ import annotations

import math
from typing import Any

from sampan.controllers.util.conditions import parse_time
from sampan.controllers.util.pods import deletion_cost, is_ready, phase, ready_since, restart_count

Obj = dict[str, Any]

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _age_bucket(since: float | None, now: float) -> int:
    """Log2 bucket of an age, so pods of about the same age tie (upstream's LogarithmicScaleDown)."""
    if since is None:
        return -1
    age_ns = max((now - since) * 1e9, 1.0)
    return int(math.log2(age_ns))


def deletion_key(pod: Obj, rank: int, now: float) -> tuple[Any, ...]:
    """Smaller sorts first = deleted first."""
    meta, spec = pod.get("metadata", {}), pod.get("spec") or {}
    ready = is_ready(pod)
    created = parse_time(meta.get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,  # unscheduled first
        _PHASE_ORDER.get(phase(pod), 0),  # pending < unknown < running
        1 if ready else 0,  # not ready before ready
        deletion_cost(pod),  # cheaper first
        -rank,  # pods doubled up on a node first
        _age_bucket(ready_since(pod), now) if ready else 0,  # ready for less time first
        -restart_count(pod),  # more restarts first
        -1 if created is None else _age_bucket(created, now),  # newer first
        meta.get("uid", ""),
    )


def pods_to_delete(pods: list[Obj], related: list[Obj], count: int, now: float) -> list[Obj]:
    """The ``count`` pods to remove; ``related`` (pods of sibling sets) spread the node ranks."""
    on_node: dict[str, int] = {}
    for pod in related:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            on_node[node] = on_node.get(node, 0) + 1
    ranked = sorted(pods, key=lambda p: deletion_key(p, on_node.get((p.get("spec") or {}).get("nodeName") or "", 0), now))
    return ranked[:count]

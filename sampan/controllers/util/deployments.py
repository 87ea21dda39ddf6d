"""Deployment arithmetic shared by the deployment controller's strategies (upstream's
deploymentutil): surge/unavailable budgets, revisions, annotations, status and conditions."""

from __future__ import annotations

import copy
from typing import Any

from sampan.controllers.util.conditions import get_condition, new_condition, parse_time, set_condition
from sampan.controllers.util.hashing import compute_hash
from sampan.controllers.util.intstr import scaled_value

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Annotations that belong to the Deployment/ReplicaSet machinery and are not copied between them.
SKIPPED_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}

# Progressing condition reasons.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = spec(obj).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0)


def is_rolling(d: Obj) -> bool:
    return (spec(d).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers: surge rounds up, unavailable down, never both 0."""
    rolling = (spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(rolling.get("maxSurge"), desired, True, "25%")
    unavailable = scaled_value(rolling.get("maxUnavailable"), desired, False, "25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1  # otherwise the rollout could never make progress
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], replicas(d))


def revision(obj: Obj | None) -> int:
    value = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def template_without_hash(template: Obj | None) -> Obj:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        del labels[HASH_LABEL]
        if not labels:
            del t["metadata"]["labels"]
    return t


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    return template_without_hash(a) == template_without_hash(b)


def pod_template_hash(d: Obj) -> str:
    collisions = (d.get("status") or {}).get("collisionCount")
    return compute_hash(spec(d).get("template") or {}, collisions)


def created_key(obj: Obj) -> tuple[float, str]:
    meta = obj.get("metadata", {})
    return (parse_time(meta.get("creationTimestamp")) or 0.0, meta.get("name", ""))


def find_new(d: Obj, sets: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (ignoring the hash label)."""
    template = spec(d).get("template")
    for rs in sorted(sets, key=created_key):
        if equal_ignore_hash(spec(rs).get("template"), template):
            return rs
    return None


def replicas_annotations_changed(rs: Obj, desired: int, max_replicas: int) -> Obj | None:
    """The annotation patch making desired/max-replicas current, or None."""
    ann = rs.get("metadata", {}).get("annotations") or {}
    want = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(max_replicas)}
    changed = {k: v for k, v in want.items() if ann.get(k) != v}
    return changed or None


def copy_annotations(d: Obj, rs_annotations: dict[str, str]) -> bool:
    """Copy the Deployment's own annotations (e.g. change-cause) onto a ReplicaSet's."""
    changed = False
    for k, v in (d.get("metadata", {}).get("annotations") or {}).items():
        if k in SKIPPED_ANNOTATIONS or rs_annotations.get(k) == v:
            continue
        rs_annotations[k] = v
        changed = True
    return changed


def new_rs_annotations(d: Obj, rs_annotations: dict[str, str], new_revision: int, exists: bool) -> bool:
    """Bring a new ReplicaSet's annotations up to date; True when something changed."""
    changed = copy_annotations(d, rs_annotations)
    old = rs_annotations.get(REVISION)
    try:
        old_revision = int(old) if old is not None else 0
    except ValueError:
        old_revision = 0
    if old_revision < new_revision:
        rs_annotations[REVISION] = str(new_revision)
        changed = True
        if old is not None:
            history = rs_annotations.get(REVISION_HISTORY)
            rs_annotations[REVISION_HISTORY] = f"{history},{old}" if history else old
    if not exists or DESIRED_REPLICAS not in rs_annotations or MAX_REPLICAS not in rs_annotations:
        rs_annotations[DESIRED_REPLICAS] = str(replicas(d))
        rs_annotations[MAX_REPLICAS] = str(replicas(d) + max_surge(d))
        changed = True
    return changed


def new_rs_replicas(d: Obj, all_sets: list[Obj], new_rs: Obj | None) -> int:
    """How big the new ReplicaSet may be now."""
    if not is_rolling(d):
        return replicas(d)
    current = replicas(new_rs)
    total = sum(replicas(rs) for rs in all_sets)
    allowed = replicas(d) + max_surge(d)
    if total >= allowed:
        return current
    return current + max(0, min(allowed - total, replicas(d) - current))


def calculate_status(d: Obj, all_sets: list[Obj], new_rs: Obj | None, now: float) -> Obj:
    available = sum(status_int(rs, "availableReplicas") for rs in all_sets)
    total = sum(replicas(rs) for rs in all_sets)
    old: Obj = d.get("status") or {}
    status: Obj = {
        "observedGeneration": d.get("metadata", {}).get("generation", 0),
        "replicas": sum(status_int(rs, "replicas") for rs in all_sets),
        "updatedReplicas": status_int(new_rs, "replicas"),
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_sets),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas(d) - max_unavailable(d):
        cond = new_condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now, True)
    else:
        cond = new_condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now, True)
    set_condition(status, cond)
    return status


def has_progress_deadline(d: Obj) -> bool:
    deadline = spec(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != 2**31 - 1


def is_complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= int(d.get("metadata", {}).get("generation") or 0)
    )


def is_progressing(d: Obj, new: Obj) -> bool:
    old: Obj = d.get("status") or {}

    def g(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)

    return (
        g(new, "updatedReplicas") > g(old, "updatedReplicas")
        or g(new, "replicas") - g(new, "updatedReplicas") < g(old, "replicas") - g(old, "updatedReplicas")
        or g(new, "readyReplicas") > g(old, "readyReplicas")
        or g(new, "availableReplicas") > g(old, "availableReplicas")
    )


def timed_out(d: Obj, status: Obj, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + int(spec(d)["progressDeadlineSeconds"]) < now


def rs_fraction(rs: Obj, d: Obj) -> int:
    """How much ``rs`` should change when the Deployment is resized mid-rollout (proportionally)."""
    if replicas(d) == 0:
        return -replicas(rs)
    target_total = replicas(d) + max_surge(d)
    ann = rs.get("metadata", {}).get("annotations") or {}
    try:
        annotated = int(ann[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = status_int(d, "replicas")
    if annotated <= 0:
        return 0
    # Go's math.Round: halves away from zero.
    exact = replicas(rs) * target_total / annotated
    return int(exact + 0.5) - replicas(rs)


def proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = rs_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

"""Job helpers the job, cronjob and ttl-after-finished controllers share: finished
conditions, completed-index sets and pod failure policy rules."""

from __future__ import annotations

from typing import Any

from sampan.controllers.util.conditions import get_condition, parse_time

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def finished_condition(job: Obj) -> Obj | None:
    """The Complete or Failed condition with status True, if the job has finished."""
    for type_ in ("Complete", "Failed"):
        cond = get_condition(job.get("status"), type_)
        if cond is not None and cond.get("status") == "True":
            return cond
    return None


def is_finished(job: Obj) -> bool:
    return finished_condition(job) is not None


def finish_time(job: Obj) -> float | None:
    cond = finished_condition(job)
    if cond is None:
        return None
    if cond["type"] == "Complete" and (job.get("status") or {}).get("completionTime"):
        return parse_time(job["status"]["completionTime"])
    return parse_time(cond.get("lastTransitionTime"))


# -- completed indexes ("1,3-5,7") -------------------------------------------------------
def parse_indexes(text: str | None, completions: int | None = None) -> set[int]:
    found: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            continue
        if completions is not None:
            hi = min(hi, completions - 1)
        found.update(range(max(lo, 0), hi + 1))
    return found


def format_indexes(indexes: set[int]) -> str:
    ranges: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(ranges)


def pod_index(pod: Obj) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# -- pod failure policy ---------------------------------------------------------------------
def _exit_code_matches(rule: Obj, pod: Obj) -> str | None:
    """The message for the first container whose exit code matches ``onExitCodes``."""
    codes = rule.get("onExitCodes") or {}
    wanted_container = codes.get("containerName")
    values = set(codes.get("values") or [])
    operator = codes.get("operator")
    status = pod.get("status") or {}
    for cs in list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or []):
        if wanted_container and cs.get("name") != wanted_container:
            continue
        terminated = (cs.get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if code is None or code == 0:
            continue  # only failed containers count
        if (operator == "In") == (code in values):
            return f"Container {cs.get('name')} for pod {pod['metadata'].get('namespace')}/{pod['metadata']['name']} failed with exit code {code} matching"
    return None


def _condition_matches(rule: Obj, pod: Obj) -> str | None:
    conds = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or ()}
    for pattern in rule.get("onPodConditions") or ():
        cond = conds.get(pattern.get("type"))
        if cond is not None and cond.get("status") == pattern.get("status", "True"):
            return f"Pod {pod['metadata'].get('namespace')}/{pod['metadata']['name']} has condition {cond.get('type')} matching"
    return None


def match_failure_policy(job: Obj, pod: Obj) -> tuple[str, str] | None:
    """(action, message) of the first podFailurePolicy rule matching a failed pod."""
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or ()
    for i, rule in enumerate(rules):
        action = rule.get("action", "")
        if rule.get("onExitCodes"):
            why = _exit_code_matches(rule, pod)
        else:
            why = _condition_matches(rule, pod)
        if why is not None:
            return action, f"{why} {action} rule at index {i}"
    return None

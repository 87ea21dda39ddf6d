"""Status conditions and timestamps as upstream controllers write them."""

from __future__ import annotations

from typing import Any

from sampan.api.times import parse_time, rfc3339  # noqa: F401 - controllers import them from here

Obj = dict[str, Any]


def get_condition(status: Obj | None, type_: str) -> Obj | None:
    for cond in (status or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Set a condition like upstream: the same status and reason is a no-op, lastTransitionTime
    only moves when the status flips, and the changed condition goes to the end of the list."""
    conds = list(status.get("conditions") or [])
    for old in conds:
        if old.get("type") == cond["type"]:
            if old.get("status") == cond.get("status"):
                if old.get("reason") == cond.get("reason"):
                    return
                cond = {**cond, "lastTransitionTime": old.get("lastTransitionTime", cond.get("lastTransitionTime"))}
            break
    status["conditions"] = [c for c in conds if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, type_: str) -> None:
    conds = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def new_condition(type_: str, status: str, reason: str, message: str, now: float, update_time: bool = False) -> Obj:
    stamp = rfc3339(now)
    cond: Obj = {"type": type_, "status": status}
    if update_time:
        cond["lastUpdateTime"] = stamp
    cond.update({"lastTransitionTime": stamp, "reason": reason, "message": message})
    return cond

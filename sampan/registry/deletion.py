"""Deletion: preconditions, graceful deletion, finalizers and propagation policy.

An object is removed at once unless it has finalizers (then it gets a
deletionTimestamp and stays until an update removes the last one) or its kind waits
a grace period (pods on a node: the node agent removes them with grace 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampan.api import errors
from sampan.registry.meta import Obj, meta, timestamp, timestamp_in
from sampan.registry.options import DeleteOptions
from sampan.store import interface as st

if TYPE_CHECKING:
    from sampan.registry.store import ResourceStore

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
ATTEMPTS = 16


def check_preconditions(rs: ResourceStore, obj: Obj, opts: DeleteOptions) -> None:
    m = meta(obj)
    if opts.precondition_uid and opts.precondition_uid != m.get("uid"):
        why = (
            f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: {m.get('uid', '')}"
        )
        raise errors.conflict(rs.gr, m["name"], why)
    if opts.precondition_resource_version and opts.precondition_resource_version != m.get("resourceVersion"):
        why = (
            "Precondition failed: ResourceVersion in precondition: "
            f"{opts.precondition_resource_version}, ResourceVersion in object meta: {m.get('resourceVersion', '')}"
        )
        raise errors.conflict(rs.gr, m["name"], why)


def _propagation(opts: DeleteOptions) -> str | None:
    if opts.propagation_policy is not None and opts.orphan_dependents is not None:
        raise errors.invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            [
                errors.cause(
                    "FieldValueInvalid",
                    'Invalid value: "null": orphanDependents and deletionPropagation cannot be both set',
                    "propagationPolicy",
                )
            ],
        )
    policy = opts.propagation_policy
    if policy is None and opts.orphan_dependents is not None:
        policy = "Orphan" if opts.orphan_dependents else "Background"
    if policy not in (None, "Orphan", "Foreground", "Background"):
        cause = errors.cause(
            "FieldValueNotSupported",
            f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
            "propagationPolicy",
        )
        raise errors.invalid("DeleteOptions", "meta.k8s.io", "", [cause])
    return policy


def _gc_finalizers(finalizers: list[str], policy: str | None) -> list[str]:
    """Adds or removes the garbage collector's finalizers for the requested policy."""
    if policy is None:
        return finalizers
    kept = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
    if policy == "Orphan":
        kept.append(ORPHAN)
    elif policy == "Foreground":
        kept.append(FOREGROUND)
    return kept


def deleted_status(rs: ResourceStore, obj: Obj) -> Obj:
    m = meta(obj)
    details = {"name": m.get("name", ""), "group": rs.info.group, "kind": rs.info.plural, "uid": m.get("uid", "")}
    return errors.status_success({k: v for k, v in details.items() if v})


async def delete(rs: ResourceStore, namespace: str, name: str, opts: DeleteOptions) -> tuple[Obj, bool]:
    """Returns (Status or the object still pending deletion, removed_now)."""
    policy = _propagation(opts)
    key = rs.key(namespace, name)
    for _ in range(ATTEMPTS):
        try:
            current = await rs.store.get(key)
        except st.NotFound:
            raise errors.not_found(rs.gr, name) from None
        obj = rs.read(current)
        check_preconditions(rs, obj, opts)
        pending = _mark_for_deletion(rs, obj, opts, policy)
        same_revision = st.Preconditions(revision=current.revision)
        try:
            if pending is None:
                if not opts.dry_run:
                    await rs.store.delete(key, same_revision)
                    await rs.strategy.after_delete(obj)
                return deleted_status(rs, obj), True
            if opts.dry_run:
                return pending, False
            kv = await rs.store.guaranteed_update(key, lambda _cur: rs.encode(pending), same_revision)
            return rs.read(kv), False
        except st.Conflict:
            continue  # changed under us; decide again on the fresh object
        except st.NotFound:
            raise errors.not_found(rs.gr, name) from None
    raise errors.conflict(rs.gr, name)


def _mark_for_deletion(rs: ResourceStore, obj: Obj, opts: DeleteOptions, policy: str | None) -> Obj | None:
    """The object as it should be kept while deletion is pending, or None to remove it now."""
    m = meta(obj)
    already = m.get("deletionTimestamp")
    finalizers = _gc_finalizers(list(m.get("finalizers") or []), policy)
    if finalizers:
        m["finalizers"] = finalizers
    else:
        m.pop("finalizers", None)
    keep = rs.strategy.before_delete(obj)
    grace = rs.strategy.grace_period(obj, opts.grace_period_seconds)
    if already:
        # A second delete may only shorten the grace period.
        current_grace = int(m.get("deletionGracePeriodSeconds") or 0)
        if grace < current_grace:
            m["deletionGracePeriodSeconds"] = grace
            m["deletionTimestamp"] = timestamp_in(grace)
        if not finalizers and not keep and int(m.get("deletionGracePeriodSeconds") or 0) == 0:
            return None
        return obj
    if grace > 0:
        m["deletionTimestamp"] = timestamp_in(grace)
        m["deletionGracePeriodSeconds"] = grace
        return obj
    if finalizers or keep:
        m["deletionTimestamp"] = m.get("deletionTimestamp") or timestamp()
        m["deletionGracePeriodSeconds"] = 0
        return obj
    return None

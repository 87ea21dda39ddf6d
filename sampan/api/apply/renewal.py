"""A cheap path for repeated writes by the same manager (lease renewals, heartbeats).

When a write only changes scalar values that its manager already owns, alone, the
full schema-aware comparison would leave every entry's fields as they are and only
refresh the manager's time. Spotting that case needs just a plain walk of the two
objects; anything less simple (lists, added or removed keys, nulls, shared or
unowned fields, several API versions) goes the full way.
"""

from __future__ import annotations

from typing import Any

from sampan.api.apply import fieldpath as fp
from sampan.api.apply.fieldpath import FieldSet, Path

# Guards the walk: deeper objects are left to the full comparison.
MAX_DEPTH = 8


def scalar_changes(before: Any, after: Any, prefix: Path = (), depth: int = 0) -> set[Path] | None:
    """Paths of the scalars that differ, if the objects differ only in non-null scalars
    under the same keys of nested objects; None otherwise."""
    if not isinstance(before, dict) or not isinstance(after, dict) or depth > MAX_DEPTH:
        return None
    if before.keys() != after.keys():
        return None
    out: set[Path] = set()
    for name, old in before.items():
        new = after[name]
        if old == new:
            continue
        path = prefix + (fp.field(name),)
        if isinstance(old, dict) or isinstance(new, dict):
            inner = scalar_changes(old, new, path, depth + 1)
            if inner is None:
                return None
            out |= inner
        elif isinstance(old, (list, tuple)) or isinstance(new, (list, tuple)) or old is None or new is None:
            return None
        else:
            out.add(path)
    return out


# Metadata the server sets; upstream never records owners for it.
SERVER_META = ("name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
               "managedFields", "resourceVersion")
_META = fp.field("metadata")


def without_server_meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k not in SERVER_META}}


def owns_server_meta(fields: FieldSet) -> bool:
    return any(len(p) >= 2 and p[0] == _META and p[1][1] in SERVER_META for p in fields)


def only_owner(changes: set[Path], mine: FieldSet, others: list[FieldSet],
               ignored: FieldSet, stripped: FieldSet) -> bool:
    """True when every change is a field ``mine`` owns and no other entry does."""
    if not changes or not changes <= mine or changes & stripped:
        return False
    if ignored and fp.recursive_difference(changes, ignored) != changes:
        return False
    return all(not (changes & theirs) for theirs in others)

"""Server-side ``meta.k8s.io/v1`` Tables, the way ``kubectl get`` expects them.

kubectl prints only what the server's Table says, so every built-in kind gets the
columns and cell formats of the upstream printers; custom resources use their CRD's
``additionalPrinterColumns``; anything else gets upstream's default (Name, Created At).

    build_table("apps", "deployments", objects)
    build_table("stable.example.com", "crontabs", objects, columns=version["additionalPrinterColumns"])
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any

from . import apps, batch, core, events, networking, other, pods  # noqa: F401  (register printers)
from .common import META, NAME, PRINTERS, Column, Obj
from .crd import ColumnTable
from .humanize import human_duration, parse_time, short_human_duration

__all__ = ["build_table", "has_printer", "human_duration", "short_human_duration", "INCLUDE_OBJECT_VALUES"]

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

# Built-in resources without a printer (roles, limitranges, CRDs...) get this pair.
_DEFAULT_COLUMNS = [NAME, Column("Created At", "date", doc=(META, "creationTimestamp"))]


def has_printer(group: str, resource: str) -> bool:
    """Whether the kind has its own columns (otherwise the default ones are used)."""
    return (group, resource) in PRINTERS


@functools.cache
def _builtin_groups() -> frozenset[str]:
    try:
        from sampan.api.schemas import definitions
    except ImportError:
        return frozenset({""})
    groups = {gvk.get("group", "") for schema in definitions().values()
              for gvk in schema.get("x-kubernetes-group-version-kind", [])}
    return frozenset(groups)


def _row_object(obj: Obj, include_object: str) -> Obj:
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def _default_cells(obj: Obj, now: datetime) -> list[Any]:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    parsed = parse_time(created)
    # Upstream prints the zero time when the timestamp is missing.
    stamp = parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else "0001-01-01T00:00:00Z"
    return [(obj.get("metadata") or {}).get("name") or "", stamp]


def build_table(group: str, resource: str, objects: list[dict], *, include_object: str = "Metadata",
                now: datetime | None = None, columns: list[dict] | None = None) -> dict:
    """A Table of ``objects`` (all of one resource).

    ``columns`` (a CRD version's ``additionalPrinterColumns``, possibly empty) replaces
    the built-in printer. The caller fills ``metadata.resourceVersion``/``continue``.
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT_VALUES)}, not {include_object!r}")
    now = now or datetime.now(timezone.utc)
    printer = PRINTERS.get((group, resource)) if columns is None else None
    conditions = printer.conditions if printer else None
    if printer is not None:
        definitions, row_fn = printer.definitions(), printer.row
    elif columns is not None or group not in _builtin_groups():
        # Custom resources: their columns, or upstream's "Age" when none are declared.
        crd_table = ColumnTable(columns or [])
        definitions, row_fn = crd_table.definitions, crd_table.row
    else:
        definitions, row_fn = [c.definition() for c in _DEFAULT_COLUMNS], _default_cells

    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_fn(obj, now)}
        if conditions is not None:
            found = conditions(obj)
            if found:
                row["conditions"] = found
        if include_object != "None":
            row["object"] = _row_object(obj, include_object)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": definitions, "rows": rows}

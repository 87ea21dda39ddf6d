"""Tables for custom resources, driven by a CRD version's ``additionalPrinterColumns``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .common import META, NAME, Obj, describe, name
from .humanize import parse_time, since
from .jsonpath import JSONPathError, compile_path

# What upstream serves when a CRD version declares no printer columns.
DEFAULT_COLUMNS = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]


class ColumnTable:
    """Column definitions and row cells for one CRD version."""

    def __init__(self, columns: list[dict[str, Any]]) -> None:
        if not columns:
            columns = [dict(DEFAULT_COLUMNS[0], description=describe((META, "creationTimestamp")))]
        self.definitions = [NAME.definition()]
        self.paths = []
        self.types = []
        for col in columns:
            path_text = col.get("jsonPath") or col.get("JSONPath") or ""
            try:
                path = compile_path(path_text)
            except JSONPathError:
                path = None  # an unusable path prints as an empty cell
            self.paths.append(path)
            self.types.append(col.get("type", "string"))
            self.definitions.append({
                "name": col.get("name", ""),
                "type": col.get("type", "string"),
                "format": col.get("format", ""),
                "description": col.get("description")
                or f"Custom resource definition column (in JSONPath format): {path_text}",
                "priority": int(col.get("priority") or 0),
            })

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        cells: list[Any] = [name(obj)]
        for path, kind in zip(self.paths, self.types):
            found = path.find(obj) if path is not None else []
            # Only the first match is shown, as upstream supports simple paths only.
            cells.append(cell_value(kind, found[0], now) if found else None)
        return cells


def _go_text(value: Any) -> str:
    """How a JSONPath template prints a value into a string column."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def cell_value(kind: str, value: Any, now: datetime) -> Any:
    """A cell typed by the column's ``type``; None when the value does not fit it."""
    if value is None:
        return None
    if kind == "string":
        return _go_text(value)
    if kind == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) else None
    if kind == "number":
        if isinstance(value, bool):
            return None
        return float(value) if isinstance(value, (int, float)) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        if not isinstance(value, str):
            return None
        return since(value, now) if parse_time(value) else "<invalid>"
    return None


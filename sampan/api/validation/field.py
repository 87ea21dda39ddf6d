"""Field errors shaped like the apiserver's ``StatusCause`` entries.

A cause is ``{"reason": ..., "message": ..., "field": ...}`` where ``message`` is the
error body upstream prints after the field path (``Invalid value: "x": detail``).
"""

from __future__ import annotations

import json
from typing import Any

Cause = dict[str, str]

_OMIT = object()  # marks "no bad value to print", as upstream's omitValue


def go_value(value: Any) -> str:
    """Formats a bad value the way Go's fmt does for the common field types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + inner + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _cause(reason: str, field: str, body: str, detail: str) -> Cause:
    return {"reason": reason, "message": f"{body}: {detail}" if detail else body, "field": field}


def required(field: str, detail: str = "") -> Cause:
    return _cause("FieldValueRequired", field, "Required value", detail)


def forbidden(field: str, detail: str = "") -> Cause:
    return _cause("FieldValueForbidden", field, "Forbidden", detail)


def invalid(field: str, value: Any, detail: str = "") -> Cause:
    return _cause("FieldValueInvalid", field, f"Invalid value: {go_value(value)}", detail)


def type_invalid(field: str, value: Any, detail: str = "") -> Cause:
    return _cause("FieldValueTypeInvalid", field, f"Invalid value: {go_value(value)}", detail)


def not_found(field: str, value: Any) -> Cause:
    return _cause("FieldValueNotFound", field, f"Not found: {go_value(value)}", "")


def duplicate(field: str, value: Any) -> Cause:
    return _cause("FieldValueDuplicate", field, f"Duplicate value: {go_value(value)}", "")


def not_supported(field: str, value: Any, valid: list[str]) -> Cause:
    detail = "supported values: " + ", ".join(json.dumps(v) for v in valid) if valid else ""
    return _cause("FieldValueNotSupported", field, f"Unsupported value: {go_value(value)}", detail)


def too_long(field: str, max_bytes: int) -> Cause:
    unit = "byte" if max_bytes == 1 else "bytes"
    return _cause("FieldValueTooLong", field, "Too long", f"may not be more than {max_bytes} {unit}")


def too_many(field: str, actual: int, limit: int) -> Cause:
    return _cause("FieldValueTooMany", field, f"Too many: {actual}", f"must have at most {limit} items")


def immutable(field: str, value: Any) -> Cause:
    return invalid(field, value, "field is immutable")


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def invalid_status_message(kind: str, group: str, name: str, causes: list[Cause]) -> str:
    """The message of a 422 Invalid Status: ``Deployment.apps "web" is invalid: ...``."""
    qualified = f"{kind}.{group}" if group else kind
    errs = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    body = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return f'{qualified} "{name}" is invalid: {body}'

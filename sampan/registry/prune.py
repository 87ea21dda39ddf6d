"""Dropping fields a built-in kind does not have, as decoding into Go structs does
upstream when fieldValidation is Warn or Ignore (Strict refuses them instead)."""

from __future__ import annotations

from typing import Any

from sampan.api.schemas import resolve


def prune_unknown(value: Any, schema: dict[str, Any] | None) -> None:
    """Removes, in place, object keys the (resolved) schema does not declare."""
    s = resolve(schema)
    if not s or s.get("x-kubernetes-preserve-unknown-fields") is True:
        return
    if isinstance(value, dict):
        props = s.get("properties")
        extra = s.get("additionalProperties")
        for key in list(value):
            if props is not None and key in props:
                prune_unknown(value[key], props[key])
            elif isinstance(extra, dict):
                prune_unknown(value[key], extra)
            elif props is not None and extra is not True:
                del value[key]
            # no properties at all: a free-form object (RawExtension, JSON) keeps everything
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        for item in value:
            prune_unknown(item, s["items"])

"""Built-in kinds' schemas, from the Kubernetes OpenAPI definitions that ship in the
``kubernetes-validate`` package (the Kubernetes version Sampan serves).

Definitions are keyed by their OpenAPI name (``io.k8s.api.core.v1.Pod``) and keep
the upstream extensions (``x-kubernetes-patch-merge-key``, ``x-kubernetes-list-type``,
``x-kubernetes-group-version-kind``...). References look like ``{"$ref": "#/$defs/NAME"}``.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson

KUBERNETES_VERSION = "1.32.0"
SERVED_MAJOR, SERVED_MINOR = "1", "32"
_REF_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local"
    return orjson.loads((root / "_definitions.json").read_bytes())["$defs"]


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def definition_name_for(group: str, version: str, kind: str) -> str | None:
    """The definition name of a built-in kind, e.g. ('apps','v1','Deployment')."""
    return _gvk_index().get((group, version, kind))


def schema_for(group: str, version: str, kind: str) -> dict[str, Any] | None:
    name = definition_name_for(group, version, kind)
    return definitions()[name] if name else None


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref[len(_REF_PREFIX) :] if isinstance(ref, str) and ref.startswith(_REF_PREFIX) else None


def resolve(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Follows ``$ref`` (also through a single-element ``allOf``) to the schema itself."""
    while schema:
        name = ref_name(schema)
        if name is None and isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            name = ref_name(schema["allOf"][0])
        if name is None:
            return schema
        schema = definitions().get(name, {})
    return {}


def property_schema(schema: dict[str, Any] | None, field: str) -> dict[str, Any]:
    """The resolved schema of ``field`` in an object schema (empty if unknown)."""
    props = resolve(schema).get("properties") or {}
    return resolve(props.get(field))


def items_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The resolved element schema of an array schema, or value schema of a map."""
    s = resolve(schema)
    if "items" in s:
        return resolve(s["items"])
    extra = s.get("additionalProperties")
    return resolve(extra) if isinstance(extra, dict) else {}

"""Built-in kinds' schemas, from the Kubernetes OpenAPI definitions that ship in the
``kubernetes-validate`` package (the Kubernetes version Sampan serves).

Definitions are keyed by their OpenAPI name (``io.k8s.api.core.v1.Pod``) and keep
the upstream extensions (``x-kubernetes-patch-merge-key``, ``x-kubernetes-list-type``,
``x-kubernetes-group-version-kind``...). References look like ``{"$ref": "#/$defs/NAME"}``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import orjson

KUBERNETES_VERSION = "1.32.0"
SERVED_MAJOR, SERVED_MINOR = "1", "32"
_REF_PREFIX = "#/$defs/"


def _definitions_file() -> Path:
    # find_spec locates the package without running its __init__ (which pulls in
    # jsonschema and friends, megabytes the server never uses).
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the kubernetes-validate package is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local" / "_definitions.json"


def _without_descriptions(node: Any) -> Any:
    """Schema documentation text dropped: most of the file, needed only for OpenAPI docs."""
    if isinstance(node, dict):
        return {
            k: _without_descriptions(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """The definitions without ``description`` texts (a quarter of the memory)."""
    return _without_descriptions(documented_definitions.__wrapped__())


@functools.cache
def documented_definitions() -> dict[str, dict[str, Any]]:
    """The definitions as shipped, documentation included (for OpenAPI documents)."""
    return orjson.loads(_definitions_file().read_bytes())["$defs"]


@functools.cache
def _property_descriptions() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, schema in documented_definitions.__wrapped__().items():
        props = schema.get("properties") or {}
        out[name] = {p: s["description"] for p, s in props.items() if isinstance(s.get("description"), str)}
    return out


def property_description(definition: str, prop: str) -> str | None:
    """The documentation of one property of a definition, without keeping the whole file."""
    descriptions = _property_descriptions().get(definition)
    return None if descriptions is None else descriptions.get(prop, "")


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


def items_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The resolved element schema of an array schema, or value schema of a map."""
    s = resolve(schema)
    if "items" in s:
        return resolve(s["items"])
    extra = s.get("additionalProperties")
    return resolve(extra) if isinstance(extra, dict) else {}

"""Structural check of a decoded object against its schema: unknown fields and JSON types.

Upstream the apiserver decodes built-ins strictly into Go structs, so both problems are
*decoding* errors there: the caller must answer **400 BadRequest** with the message
``<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding error: unknown
field "spec.foo", unknown field "spec.bar"`` (type errors use the same prefix with the
``json: cannot unmarshal ...`` text). Custom resources report type errors as 422 Invalid
(they are schema validation there); unknown fields on them are 400 as for built-ins.
"""

from __future__ import annotations

from typing import Any

from sampan.api import schemas
from sampan.api.validation import field
from sampan.api.validation.field import Cause

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_ROOT_KEYS = ("apiVersion", "kind", "metadata")


def _types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if x != "null"}
    if schema.get("x-kubernetes-int-or-string"):
        return {"integer", "string"}
    alts = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(alts, list):
        out: set[str] = set()
        for alt in alts:
            inner = _types(schemas.resolve(alt))
            if not inner:
                return set()
            out |= inner
        return out
    return set()


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def type_matches(value: Any, types: set[str]) -> bool:
    actual = json_type(value)
    return not types or actual in types or (actual == "integer" and "number" in types)


def _go_type(schema: dict[str, Any], name: str | None) -> str:
    if name:
        parts = name.split(".")
        return f"{parts[-2]}.{parts[-1]}" if len(parts) > 1 else name
    types = _types(schema)
    if types == {"integer", "string"}:
        return "intstr.IntOrString"
    if "integer" in types:
        return schema.get("format") or "int"
    if "number" in types:
        return "float64"
    if "boolean" in types:
        return "bool"
    if "string" in types:
        return "string"
    if "array" in types:
        return "[]" + _go_type(schemas.resolve(schema.get("items")), schemas.ref_name(schema.get("items") or {}))
    if "object" in types:
        return "map[string]string"
    return "interface {}"


def _ref_of(schema: dict[str, Any] | None) -> str | None:
    if not schema:
        return None
    name = schemas.ref_name(schema)
    if name is None and isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        name = schemas.ref_name(schema["allOf"][0])
    return name


class _Walker:
    def __init__(self, builtin: bool) -> None:
        self.builtin = builtin
        self.unknown: list[str] = []
        self.causes: list[Cause] = []

    def type_error(self, path: str, value: Any, schema: dict, ref: str | None, parent: str) -> None:
        actual = json_type(value)
        expected = sorted(_types(schema))
        if self.builtin:
            dotted = path.replace("[", ".[").split(".")
            go_path = ".".join(p for p in dotted if not p.startswith("["))
            msg = (f"json: cannot unmarshal {actual if actual != 'integer' else 'number'} into Go struct field "
                   f"{parent}.{go_path} of type {_go_type(schema, ref)}")
            self.causes.append({"reason": "FieldValueTypeInvalid", "message": msg, "field": path})
        else:
            want = expected[0] if len(expected) == 1 else ",".join(expected)
            detail = f'{path} in body must be of type {want}: "{actual}"'
            self.causes.append(field.type_invalid(path, actual, detail))

    def walk(self, value: Any, raw_schema: dict[str, Any] | None, path: str, parent: str) -> None:
        if value is None or not raw_schema:
            return
        ref = _ref_of(raw_schema)
        schema = schemas.resolve(raw_schema)
        types = _types(schema)
        if not type_matches(value, types):
            self.type_error(path, value, schema, ref, parent)
            return
        struct = ref.split(".")[-1] if ref else parent
        if isinstance(value, dict):
            self.walk_object(value, schema, path, struct)
        elif isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                self.walk(item, schema["items"], field.index(path, i), struct)

    def walk_object(self, value: dict, schema: dict[str, Any], path: str, struct: str) -> None:
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        for key, item in value.items():
            sub = field.child(path, key)
            if props and key in props:
                self.walk(item, props[key], sub, struct)
            elif embedded and key in _ROOT_KEYS:
                self.walk(item, _root_key_schema(key), sub, struct)
            elif isinstance(extra, dict):
                self.walk(item, extra, sub, struct)
            elif props is not None or (extra is False):
                if not preserve:
                    self.unknown.append(sub)
            # an object schema without properties is free-form (RawExtension, JSON...)


def _root_key_schema(key: str) -> dict[str, Any]:
    if key == "metadata":
        return {"$ref": "#/$defs/" + _OBJECT_META}
    return {"type": "string"}


def validate_schema(obj: dict, schema: dict, field_validation: str) -> tuple[list[Cause], list[str]]:
    """Checks ``obj`` against its top-level schema; returns (causes, warnings).

    ``field_validation`` is the request's ``fieldValidation`` (Strict, Warn, Ignore);
    unknown fields become causes, warnings, or nothing. Type errors are always causes.
    """
    builtin = _is_builtin(schema)
    walker = _Walker(builtin)
    root = dict(schemas.resolve(schema))
    props = dict(root.get("properties") or {})
    for key in _ROOT_KEYS:
        props.setdefault(key, _root_key_schema(key))
    root["properties"] = props
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ""
    walker.walk(obj, root, "", kind or "Object")
    causes, warnings = list(walker.causes), []
    mode = (field_validation or "Strict").capitalize()
    for path in walker.unknown:
        msg = f'unknown field "{path}"'
        if mode == "Strict":
            causes.append({"reason": "FieldValueInvalid", "message": msg, "field": path})
        elif mode == "Warn":
            warnings.append(msg)
    return causes, warnings


def strict_decoding_message(kind: str, version: str, causes: list[Cause]) -> str:
    """The 400 BadRequest message upstream gives for strict/type decoding failures."""
    unknown = [c["message"] for c in causes if c["message"].startswith("unknown field")]
    other = [c["message"] for c in causes if not c["message"].startswith("unknown field")]
    head = f'{kind} in version "{version}" cannot be handled as a {kind}: '
    if other:
        return head + other[0]
    return head + "strict decoding error: " + ", ".join(unknown)


def _is_builtin(schema: dict) -> bool:
    gvks = schemas.resolve(schema).get("x-kubernetes-group-version-kind") or []
    return any(schemas.definition_name_for(g.get("group", ""), g.get("version", ""), g.get("kind", ""))
               for g in gvks)

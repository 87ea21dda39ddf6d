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

import orjson

from sampan.api import schemas
from sampan.api.validation import field
from sampan.api.validation.field import Cause

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_ROOT_KEYS = ("apiVersion", "kind", "metadata")
_MISSING: Any = object()
# Per schema node (by identity; the node is kept alive with its entry so its id is not
# reused): (node, its $ref name, the resolved schema, its JSON types). Resolving refs and
# types again for every value of every write was most of the cost of a check.
_NODES: dict[int, tuple[dict[str, Any], str | None, dict[str, Any], set[str]]] = {}
_ROOTS: dict[int, tuple[dict[str, Any], dict[str, Any], bool]] = {}
_CACHE_LIMIT = 100_000


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


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (for Python ``True == 1`` and ``1 == 1.0``)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict or kind is list:
        if a != b:
            return False
        try:
            return orjson.dumps(a) == orjson.dumps(b)
        except TypeError:
            return False
    return bool(a == b)


def _node(raw_schema: dict[str, Any]) -> tuple[dict[str, Any], str | None, dict[str, Any], set[str]]:
    found = _NODES.get(id(raw_schema))
    if found is None or found[0] is not raw_schema:
        if len(_NODES) > _CACHE_LIMIT:
            _NODES.clear()
        schema = schemas.resolve(raw_schema)
        found = _NODES[id(raw_schema)] = (raw_schema, _ref_of(raw_schema), schema, _types(schema))
    return found


class _Walker:
    def __init__(self, builtin: bool) -> None:
        self.builtin = builtin
        self.unknown: list[str] = []
        self.causes: list[Cause] = []
        # Embedded resources: their apiVersion/kind/metadata pass here but pruning drops them.
        self.embedded = False

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

    def walk(self, value: Any, raw_schema: dict[str, Any] | None, path: str, parent: str, old: Any = _MISSING) -> None:
        """``old``: the stored value at this place, already checked when it was written;
        the parts of ``value`` equal to it are not checked again."""
        if value is None or not raw_schema:
            return
        _, ref, schema, types = _node(raw_schema)
        if not type_matches(value, types):
            self.type_error(path, value, schema, ref, parent)
            return
        struct = ref.split(".")[-1] if ref else parent
        if isinstance(value, dict):
            self.walk_object(value, schema, path, struct, old if type(old) is dict else None)
        elif isinstance(value, list) and "items" in schema:
            olds = old if type(old) is list else ()
            items = schema["items"]
            for i, item in enumerate(value):
                before = olds[i] if i < len(olds) else _MISSING
                if before is not _MISSING and same_json(item, before):
                    continue
                self.walk(item, items, field.index(path, i), struct, before)

    def walk_object(self, value: dict, schema: dict[str, Any], path: str, struct: str, old: dict | None = None) -> None:
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        self.embedded = self.embedded or embedded
        for key, item in value.items():
            before = _MISSING if old is None else old.get(key, _MISSING)
            if before is not _MISSING and same_json(item, before):
                continue
            sub = field.child(path, key)
            if props and key in props:
                self.walk(item, props[key], sub, struct, before)
            elif embedded and key in _ROOT_KEYS:
                self.walk(item, _root_key_schema(key), sub, struct, before)
            elif isinstance(extra, dict):
                self.walk(item, extra, sub, struct, before)
            elif props is not None or (extra is False):
                if not preserve:
                    self.unknown.append(sub)
            # an object schema without properties is free-form (RawExtension, JSON...)


_ROOT_KEY_SCHEMAS = {"metadata": {"$ref": "#/$defs/" + _OBJECT_META}, "apiVersion": {"type": "string"},
                     "kind": {"type": "string"}}


def _root_key_schema(key: str) -> dict[str, Any]:
    # Shared (never mutated) so the per-node cache sees the same dict every time.
    return _ROOT_KEY_SCHEMAS[key]


def _root(schema: dict) -> tuple[dict[str, Any], bool]:
    """The top-level schema with apiVersion/kind/metadata declared, and whether it is a built-in's."""
    found = _ROOTS.get(id(schema))
    if found is None or found[0] is not schema:
        if len(_ROOTS) > _CACHE_LIMIT:
            _ROOTS.clear()
        root = dict(schemas.resolve(schema))
        props = dict(root.get("properties") or {})
        for key in _ROOT_KEYS:
            props.setdefault(key, _root_key_schema(key))
        root["properties"] = props
        found = _ROOTS[id(schema)] = (schema, root, _is_builtin(schema))
    return found[1], found[2]


def validate_schema(obj: dict, schema: dict, field_validation: str) -> tuple[list[Cause], list[str]]:
    """Checks ``obj`` against its top-level schema; returns (causes, warnings).

    ``field_validation`` is the request's ``fieldValidation`` (Strict, Warn, Ignore);
    unknown fields become causes, warnings, or nothing. Type errors are always causes.
    """
    causes, warnings, _ = check_schema(obj, schema, field_validation)
    return causes, warnings


def check_schema(obj: dict, schema: dict, field_validation: str,
                 old: dict | None = None) -> tuple[list[Cause], list[str], bool]:
    """:func:`validate_schema`, plus whether pruning may find anything to drop.

    ``old`` is the stored object an update replaces (checked and pruned when it was
    written): the parts of ``obj`` equal to it are skipped. A renewal that changes one
    timestamp then checks that timestamp only."""
    root, builtin = _root(schema)
    walker = _Walker(builtin)
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ""
    walker.walk(obj, root, "", kind or "Object", _MISSING if old is None else old)
    causes, warnings = list(walker.causes), []
    mode = (field_validation or "Strict").capitalize()
    for path in walker.unknown:
        msg = f'unknown field "{path}"'
        if mode == "Strict":
            causes.append({"reason": "FieldValueInvalid", "message": msg, "field": path})
        elif mode == "Warn":
            warnings.append(msg)
    return causes, warnings, bool(walker.unknown) or walker.embedded


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

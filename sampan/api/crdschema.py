"""Structural schemas of CustomResourceDefinitions (``openAPIV3Schema``): pruning,
defaulting, validation of custom resources, and the "is it structural" check."""

from __future__ import annotations

import copy
import datetime
import ipaddress
import re
import uuid
from typing import Any

from sampan.api.validation import field, names
from sampan.api.validation.field import Cause
from sampan.api.validation.meta import validate_object_meta
from sampan.api.validation.structural import json_type

_ROOT_KEYS = ("apiVersion", "kind", "metadata")
_META_KEYS = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
              "ownerReferences", "finalizers", "managedFields"}


def _types_of(schema: dict) -> set[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return {"integer", "string"}
    t = schema.get("type")
    return {t} if isinstance(t, str) and t else set()


class StructuralSchema:
    """A thin wrapper, so callers can keep one parsed schema per CRD version."""

    def __init__(self, schema: dict) -> None:
        self.schema = schema or {}

    def prune(self, obj: dict) -> list[str]:
        return prune(obj, self.schema)

    def apply_defaults(self, obj: dict) -> None:
        apply_schema_defaults(obj, self.schema)

    def validate(self, obj: dict) -> list[Cause]:
        return validate_cr(obj, self.schema)


# ---- pruning ---------------------------------------------------------------------------

def prune(obj: dict, schema: dict) -> list[str]:
    """Drops fields the schema does not know; returns their paths (``spec.foo``)."""
    pruned: list[str] = []
    _prune(obj, schema or {}, "", pruned, root=True)
    return pruned


def _prune(value: Any, schema: dict, path: str, pruned: list[str], root: bool = False) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = root or schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            sub = field.child(path, key)
            if embedded and key in _ROOT_KEYS and key not in props:
                if key == "metadata" and not root and isinstance(value[key], dict):
                    for mk in [k for k in value[key] if k not in _META_KEYS]:
                        pruned.append(field.child(sub, mk))
                        del value[key][mk]
                continue
            if key in props:
                _prune(value[key], props[key] or {}, sub, pruned)
            elif isinstance(extra, dict):
                _prune(value[key], extra, sub, pruned)
            elif extra is True or preserve:
                continue
            else:
                pruned.append(sub)
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _prune(item, schema["items"], field.index(path, i), pruned)


# ---- defaulting ------------------------------------------------------------------------

def apply_schema_defaults(obj: Any, schema: dict) -> None:
    """Sets ``default`` values for missing fields (and nulls in non-nullable fields)."""
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            sub = sub or {}
            if key in obj and obj[key] is None and not sub.get("nullable"):
                if "default" in sub:
                    obj[key] = copy.deepcopy(sub["default"])
                else:
                    del obj[key]
            elif key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_schema_defaults(obj[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in obj.items():
                if key not in props:
                    apply_schema_defaults(value, extra)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_schema_defaults(item, schema["items"])


# ---- validation ------------------------------------------------------------------------

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date":
            return bool(_DATE_RE.match(value)) and bool(datetime.date.fromisoformat(value))
        if fmt == "date-time":
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return "T" in value or " " in value
        if fmt == "uuid":
            uuid.UUID(value)
            return True
        if fmt == "ipv4":
            return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
        if fmt == "ipv6":
            return isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address)
        if fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
            return "/" in value
        if fmt == "hostname":
            return not names.dns1123_subdomain(value)
        if fmt == "byte":
            import base64
            base64.b64decode(value, validate=True)
            return True
    except ValueError:
        return False
    return True


def validate_cr(obj: dict, schema: dict) -> list[Cause]:
    """Validates a custom resource against its structural schema, with upstream wording."""
    errs: list[Cause] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        errs += validate_object_meta(meta, None, names.name_checker("subdomain"), core_rules=False)
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEYS}
    root = dict(schema or {})
    root["properties"] = {k: v for k, v in (root.get("properties") or {}).items() if k not in _ROOT_KEYS}
    _validate(body, root, "", errs)
    return errs


def _validate(value: Any, schema: dict, path: str, errs: list[Cause]) -> None:
    shown = path or "<root>"
    if value is None:
        if not schema.get("nullable") and _types_of(schema):
            want = ",".join(sorted(_types_of(schema)))
            errs.append(field.type_invalid(path, "null", f'{shown} in body must be of type {want}: "null"'))
        return
    types = _types_of(schema)
    actual = json_type(value)
    if types and actual not in types and not (actual == "integer" and "number" in types):
        want = ",".join(sorted(types))
        errs.append(field.type_invalid(path, actual, f'{shown} in body must be of type {want}: "{actual}"'))
        return
    if "enum" in schema and value not in schema["enum"]:
        errs.append(field.not_supported(path, value, [v if isinstance(v, str) else str(v) for v in schema["enum"]]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _numbers(value, schema, path, shown, errs)
    elif isinstance(value, str):
        _strings(value, schema, path, shown, errs)
    elif isinstance(value, list):
        _arrays(value, schema, path, shown, errs)
    elif isinstance(value, dict):
        _objects(value, schema, path, shown, errs)


def _numbers(value: float, schema: dict, path: str, shown: str, errs: list[Cause]) -> None:
    if "maximum" in schema:
        mx = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= mx:
            errs.append(field.invalid(path, value, f"{shown} in body should be less than {mx}"))
        elif value > mx:
            errs.append(field.invalid(path, value, f"{shown} in body should be less than or equal to {mx}"))
    if "minimum" in schema:
        mn = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= mn:
            errs.append(field.invalid(path, value, f"{shown} in body should be greater than {mn}"))
        elif value < mn:
            errs.append(field.invalid(path, value, f"{shown} in body should be greater than or equal to {mn}"))
    mult = schema.get("multipleOf")
    if mult and (value / mult) != int(value / mult):
        errs.append(field.invalid(path, value, f"{shown} in body should be a multiple of {mult}"))


def _strings(value: str, schema: dict, path: str, shown: str, errs: list[Cause]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errs.append(field.too_long(path, schema["maxLength"]))
    if "minLength" in schema and len(value) < schema["minLength"]:
        errs.append(field.invalid(path, value, f"{shown} in body should be at least {schema['minLength']} chars long"))
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, value):
        errs.append(field.invalid(path, value, f"{shown} in body should match '{pattern}'"))
    fmt = schema.get("format")
    if fmt and not _format_ok(fmt, value):
        errs.append(field.invalid(path, value, f'{shown} in body must be of type {fmt}: "{value}"'))


def _arrays(value: list, schema: dict, path: str, shown: str, errs: list[Cause]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errs.append(field.too_many(path, len(value), schema["maxItems"]))
    if "minItems" in schema and len(value) < schema["minItems"]:
        errs.append(field.invalid(path, len(value), f"{shown} in body should have at least {schema['minItems']} items"))
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list = []
        for i, item in enumerate(value):
            if item in seen:
                errs.append(field.duplicate(field.index(path, i), item))
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: set = set()
        for i, item in enumerate(value):
            if isinstance(item, dict):
                k = tuple(repr(item.get(x)) for x in keys)
                if k in seen_keys:
                    errs.append(field.duplicate(field.index(path, i), {x: item.get(x) for x in keys}))
                seen_keys.add(k)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, field.index(path, i), errs)


def _objects(value: dict, schema: dict, path: str, shown: str, errs: list[Cause]) -> None:
    for req in schema.get("required") or []:
        if req not in value:
            errs.append(field.required(field.child(path, req)))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errs.append(field.too_many(path, len(value), schema["maxProperties"]))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errs.append(field.invalid(path, len(value),
                                  f"{shown} in body should have at least {schema['minProperties']} properties"))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    for key, item in value.items():
        sub = field.child(path, key)
        if key in props:
            _validate(item, props[key] or {}, sub, errs)
        elif isinstance(extra, dict):
            _validate(item, extra, sub, errs)
        if embedded and key in ("apiVersion", "kind") and not item:
            errs.append(field.required(sub))
    if embedded:
        for key in ("apiVersion", "kind"):
            if key not in value:
                errs.append(field.required(field.child(path, key)))


# ---- structural check ------------------------------------------------------------------

_FORBIDDEN = ("$ref", "additionalItems", "patternProperties", "dependencies", "definitions", "id", "$schema")


def check_structural(schema: dict, path: str = "openAPIV3Schema") -> list[str]:
    """Errors (``path: message``) that make a CRD schema non-structural; empty when fine."""
    errs: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path}: Required value: must be an object"]
    if schema.get("type") not in (None, "object"):
        errs.append(f'{path}.type: Invalid value: "{schema["type"]}": must be object at the root')
    if not schema.get("type") and not schema.get("x-kubernetes-preserve-unknown-fields"):
        errs.append(f"{path}.type: Required value: must not be empty at the root")
    meta = (schema.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):
        extra = set(meta.get("properties") or {}) - {"name", "generateName"}
        if extra or meta.get("additionalProperties") is not None:
            errs.append(f"{path}.properties[metadata]: Forbidden: must not specify anything other than name "
                        "and generateName, but metadata is implicitly specified")
    _check_node(schema, path, errs, root=True)
    return errs


def _check_node(node: dict, path: str, errs: list[str], root: bool = False) -> None:
    for key in _FORBIDDEN:
        if key in node:
            errs.append(f"{path}.{key}: Forbidden: {key} is not supported")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is False:
        errs.append(f"{path}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined")
    typ = node.get("type")
    if int_or_string and typ:
        errs.append(f'{path}.type: Invalid value: "{typ}": must be empty if x-kubernetes-int-or-string is true')
    if not root and not typ and not int_or_string and not preserve:
        errs.append(f"{path}.type: Required value: must not be empty for specified object fields")
    if node.get("properties") and isinstance(node.get("additionalProperties"), (dict, bool)) \
            and node.get("additionalProperties") is not True:
        errs.append(f"{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive")
    if typ == "array" and not isinstance(node.get("items"), dict):
        errs.append(f"{path}.items: Required value: must be specified")
    if node.get("x-kubernetes-embedded-resource") and typ != "object":
        errs.append(f'{path}.type: Invalid value: "{typ}": must be object if x-kubernetes-embedded-resource is true')
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            _check_node(sub, f"{path}.properties[{key}]", errs)
    if isinstance(node.get("items"), dict):
        _check_node(node["items"], f"{path}.items", errs)
    if isinstance(node.get("additionalProperties"), dict):
        _check_node(node["additionalProperties"], f"{path}.additionalProperties", errs)
    for combiner in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(combiner) or []):
            if isinstance(sub, dict) and "type" in sub and sub.get("type") != typ:
                errs.append(f"{path}.{combiner}[{i}].type: Forbidden: must be empty to be structural")
    if isinstance(node.get("not"), dict) and "type" in node["not"]:
        errs.append(f"{path}.not.type: Forbidden: must be empty to be structural")

"""Validation of CustomResourceDefinitions (apiextensions.k8s.io/v1), with upstream's
field paths and wording for the mistakes people make most."""

from __future__ import annotations

import re
from typing import Any

from sampan.api import crdschema
from sampan.api.validation import field, names
from sampan.api.validation.field import Cause

_SCOPES = ["Cluster", "Namespaced"]
_COLUMN_TYPES = ["integer", "number", "string", "boolean", "date"]
_CONVERSIONS = ["None", "Webhook"]
_STRUCTURAL = re.compile(r"^(?P<path>\S+): (?P<message>.*)$")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def validate_crd(obj: dict) -> list[Cause]:
    spec = _dict(obj.get("spec"))
    errs: list[Cause] = []
    meta = _dict(obj.get("metadata"))
    plural, group = _dict(spec.get("names")).get("plural", ""), spec.get("group", "")
    name = meta.get("name", "")
    if name and name != f"{plural}.{group}":
        errs.append(field.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    errs += _group(group)
    errs += _enum("spec.scope", spec.get("scope"), _SCOPES)
    errs += _versions(spec)
    errs += _names(_dict(spec.get("names")), "spec.names", required=True)
    conversion = spec.get("conversion")
    if isinstance(conversion, dict):
        errs += _enum("spec.conversion.strategy", conversion.get("strategy"), _CONVERSIONS)
    return errs


def validate_crd_update(obj: dict, old: dict) -> list[Cause]:
    """What the storage of existing custom resources depends on may not change."""
    spec, old_spec = _dict(obj.get("spec")), _dict(old.get("spec"))
    errs: list[Cause] = []
    if spec.get("group") != old_spec.get("group"):
        errs.append(field.immutable("spec.group", spec.get("group")))
    plural = _dict(spec.get("names")).get("plural")
    if plural != _dict(old_spec.get("names")).get("plural"):
        errs.append(field.immutable("spec.names.plural", plural))
    established = any(
        isinstance(c, dict) and c.get("type") == "Established" and c.get("status") == "True"
        for c in _dict(old.get("status")).get("conditions") or []
    )
    if established:
        if spec.get("scope") != old_spec.get("scope"):
            errs.append(field.immutable("spec.scope", spec.get("scope")))
        kind = _dict(spec.get("names")).get("kind")
        if kind != _dict(old_spec.get("names")).get("kind"):
            errs.append(field.immutable("spec.names.kind", kind))
    return errs


def _group(group: Any) -> list[Cause]:
    if not group:
        return [field.required("spec.group")]
    problems = names.dns1123_subdomain(str(group))
    if problems:
        return [field.invalid("spec.group", group, ",".join(problems))]
    if "." not in str(group):
        return [field.invalid("spec.group", group, "should be a domain with at least one dot")]
    return []


def _enum(path: str, value: Any, allowed: list[str]) -> list[Cause]:
    if not value:
        return [field.required(path)]
    return [] if value in allowed else [field.not_supported(path, value, allowed)]


def _versions(spec: dict[str, Any]) -> list[Cause]:
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    errs: list[Cause] = []
    seen: set[str] = set()
    unique = True
    storage = 0
    for i, version in enumerate(versions):
        path = field.index("spec.versions", i)
        vname = str(version.get("name") or "")
        if vname in seen:
            unique = False
        seen.add(vname)
        problems = names.dns1035_label(vname)
        if problems:
            errs.append(field.invalid(field.child(path, "name"), vname, ",".join(problems)))
        storage += 1 if version.get("storage") else 0
        errs += _schema(version, path)
        errs += _subresources(_dict(version.get("subresources")), field.child(path, "subresources"))
        for j, column in enumerate(version.get("additionalPrinterColumns") or []):
            errs += _column(_dict(column), field.index(field.child(path, "additionalPrinterColumns"), j))
    shown = [v.get("name") for v in versions]
    if not unique:
        errs.append(field.invalid("spec.versions", shown, "must contain unique version names"))
    if storage != 1:
        errs.append(field.invalid("spec.versions", shown, "must have exactly one version marked as storage version"))
    if versions and not any(v.get("served") for v in versions):
        errs.append(field.invalid("spec.versions", shown, "must have at least one version marked as served"))
    return errs


def _schema(version: dict[str, Any], path: str) -> list[Cause]:
    schema_path = field.child(field.child(path, "schema"), "openAPIV3Schema")
    schema = _dict(version.get("schema")).get("openAPIV3Schema")
    if not isinstance(schema, dict):
        return [field.required(schema_path, "schemas are required")]
    errs: list[Cause] = []
    prefix = field.child(path, "schema") + "."
    for problem in crdschema.check_structural(schema):
        m = _STRUCTURAL.match(problem)
        if not m:
            continue
        where, message = prefix + m["path"], m["message"]
        reason = "FieldValueForbidden" if message.startswith("Forbidden") else (
            "FieldValueRequired" if message.startswith("Required") else "FieldValueInvalid")
        errs.append({"reason": reason, "message": message, "field": where})
    return errs


def _subresources(subs: dict[str, Any], path: str) -> list[Cause]:
    scale = subs.get("scale")
    if not isinstance(scale, dict):
        return []
    errs: list[Cause] = []
    scale_path = field.child(path, "scale")
    for key, under in (("specReplicasPath", ".spec"), ("statusReplicasPath", ".status")):
        value = scale.get(key)
        if not value:
            errs.append(field.required(field.child(scale_path, key)))
        elif not str(value).startswith(under + "."):
            errs.append(field.invalid(field.child(scale_path, key), value, f"should be a json path under {under}"))
    selector = scale.get("labelSelectorPath")
    if selector and not (str(selector).startswith(".spec.") or str(selector).startswith(".status.")):
        errs.append(field.invalid(field.child(scale_path, "labelSelectorPath"), selector,
                                  "should be a json path under either .spec or .status"))
    return errs


def _column(column: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    if not column.get("name"):
        errs.append(field.required(field.child(path, "name")))
    if not column.get("type"):
        errs.append(field.required(field.child(path, "type")))
    elif column["type"] not in _COLUMN_TYPES:
        errs.append(field.not_supported(field.child(path, "type"), column["type"], _COLUMN_TYPES))
    if not column.get("jsonPath"):
        errs.append(field.required(field.child(path, "jsonPath")))
    return errs


def _names(spec_names: dict[str, Any], path: str, required: bool) -> list[Cause]:
    errs: list[Cause] = []
    for key in ("plural", "singular", "kind", "listKind"):
        value = spec_names.get(key)
        if not value:
            if required:
                errs.append(field.required(field.child(path, key)))
            continue
        lowered = str(value).lower() if key in ("kind", "listKind") else str(value)
        problems = names.dns1035_label(lowered)
        if problems:
            detail = ",".join(problems)
            if key in ("kind", "listKind"):
                detail = "may have mixed case, but should otherwise match: " + detail
            errs.append(field.invalid(field.child(path, key), value, detail))
    for i, short in enumerate(spec_names.get("shortNames") or []):
        problems = names.dns1035_label(str(short))
        if problems:
            errs.append(field.invalid(field.index(field.child(path, "shortNames"), i), short, ",".join(problems)))
    return errs

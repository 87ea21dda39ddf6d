"""ObjectMeta checks shared by every kind (create and update)."""

from __future__ import annotations

from typing import Any, Callable

from sampan.api.validation import field, names
from sampan.api.validation.field import Cause

TOTAL_ANNOTATION_SIZE = 256 * 1024
STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}
NameFn = Callable[[str, bool], list[str]]


def validate_labels(labels: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    if not isinstance(labels, dict):
        return errs
    for k, v in labels.items():
        errs += [field.invalid(path, k, e) for e in names.qualified_name(k)]
        if isinstance(v, str):
            errs += [field.invalid(path, v, e) for e in names.label_value(v)]
    return errs


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    if not isinstance(annotations, dict):
        return errs
    total = 0
    for k, v in annotations.items():
        errs += [field.invalid(path, k, e) for e in names.qualified_name(k.lower())]
        total += len(k) + len(str(v).encode())
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(field.too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def validate_finalizers(finalizers: Any, path: str, core_rules: bool = True) -> list[Cause]:
    """``core_rules``: built-in kinds also want a "/" in non-standard names; custom
    resources and CRDs use the generic rule (a qualified name) only."""
    errs: list[Cause] = []
    for i, f in enumerate(finalizers or []):
        p = field.index(path, i)
        problems = names.qualified_name(f)
        errs += [field.invalid(p, f, e) for e in problems]
        if core_rules and not problems and "/" not in f and f not in STANDARD_FINALIZERS:
            errs.append(field.invalid(p, f, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    controllers = 0
    for i, ref in enumerate(refs or []):
        p = field.index(path, i)
        if not isinstance(ref, dict):
            continue
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                detail = {"apiVersion": "version must not be empty", "kind": "kind must not be empty",
                          "name": "name must not be empty", "uid": "uid must not be empty"}[key]
                errs.append(field.invalid(field.child(p, key), ref.get(key, ""), detail))
        if ref.get("controller") is True:
            controllers += 1
    if controllers > 1:
        errs.append(field.invalid(path, refs, "Only one reference can have Controller set to true"))
    return errs


def validate_object_meta(meta: Any, namespaced: bool | None, name_fn: NameFn,
                         path: str = "metadata", core_rules: bool = True) -> list[Cause]:
    """``namespaced`` None skips the namespace rules (scope unknown to the caller)."""
    if not isinstance(meta, dict):
        return [field.required(path)]
    errs: list[Cause] = []
    name, gen = meta.get("name") or "", meta.get("generateName") or ""
    if gen:
        errs += [field.invalid(field.child(path, "generateName"), gen, e) for e in name_fn(gen, True)]
    if not name:
        if not gen:
            errs.append(field.required(field.child(path, "name"), "name or generateName is required"))
    else:
        errs += [field.invalid(field.child(path, "name"), name, e) for e in name_fn(name, False)]
    ns = meta.get("namespace") or ""
    ns_path = field.child(path, "namespace")
    if namespaced is True:
        if not ns:
            errs.append(field.required(ns_path))
        else:
            errs += [field.invalid(ns_path, ns, e) for e in names.dns1123_label(ns)]
    elif namespaced is False and ns:
        errs.append(field.forbidden(ns_path, "not allowed on this type"))
    if isinstance(meta.get("generation"), int) and meta["generation"] < 0:
        errs.append(field.invalid(field.child(path, "generation"), meta["generation"],
                                  "must be greater than or equal to 0"))
    errs += validate_labels(meta.get("labels"), field.child(path, "labels"))
    errs += validate_annotations(meta.get("annotations"), field.child(path, "annotations"))
    errs += validate_finalizers(meta.get("finalizers"), field.child(path, "finalizers"), core_rules)
    errs += validate_owner_references(meta.get("ownerReferences"), field.child(path, "ownerReferences"))
    return errs


def validate_object_meta_update(new: dict, old: dict, path: str = "metadata") -> list[Cause]:
    errs: list[Cause] = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if key in old and new.get(key) not in (None, "") and new.get(key) != old.get(key):
            errs.append(field.immutable(field.child(path, key), new.get(key)))
    if old.get("deletionTimestamp") and new.get("deletionTimestamp") != old.get("deletionTimestamp"):
        errs.append(field.immutable(field.child(path, "deletionTimestamp"), new.get("deletionTimestamp")))
    if old.get("deletionTimestamp"):
        added = set(new.get("finalizers") or []) - set(old.get("finalizers") or [])
        if added:
            errs.append(field.forbidden(field.child(path, "finalizers"),
                                        "no new finalizers can be added if the object is being deleted, "
                                        f"found new finalizers []string{{{', '.join(repr(a).replace(chr(39), chr(34)) for a in sorted(added))}}}"))
    return errs

"""Schema-aware walks over objects: merging an applied configuration onto a live
object, the field set an object sets, the difference between two objects, and
removal of owned-and-dropped fields.

Structure comes from an OpenAPI schema (built-in definitions or a CRD's
``openAPIV3Schema``):

- an object with ``properties`` is a struct whose properties are *named fields*;
  ``x-kubernetes-map-type: atomic`` makes it (or a map) one leaf;
- an object with ``additionalProperties`` (or no schema) is a granular map;
- an array is atomic unless ``x-kubernetes-list-type`` says ``set`` or ``map``
  (keys from ``x-kubernetes-list-map-keys``); without a list type, the patch
  strategy ``merge`` makes it keyed by ``x-kubernetes-patch-merge-key``, or a set
  when there is no merge key;
- no schema (``None`` or ``{}``) means "deduced": maps granular, lists atomic.
"""

from __future__ import annotations

from typing import Any

from sampan.api import schemas
from sampan.api.validation.structural import same_json
from sampan.api.apply.fieldpath import (
    FIELD,
    FieldSet,
    Path,
    PathElement,
    field,
    freeze,
    index,
    key,
    path_string,
    set_value,
)

Schema = dict[str, Any] | None

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# Key fields that upstream fills from OpenAPI defaults the shipped definitions lack.
_KEY_DEFAULTS = {"protocol": "TCP"}


class InvalidApply(ValueError):
    """The applied configuration cannot be used (upstream answers 400/422)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# --- schema navigation --------------------------------------------------------

# Resolved schema nodes by identity (the node is kept alive with its entry so its id is
# not reused): every walk resolves the same few hundred nodes over and over.
_RESOLVED: dict[int, tuple[Any, dict[str, Any]]] = {}


def _resolve(schema: Schema) -> dict[str, Any]:
    if not schema:
        return {}
    found = _RESOLVED.get(id(schema))
    if found is None or found[0] is not schema:
        if len(_RESOLVED) > 100_000:
            _RESOLVED.clear()
        found = _RESOLVED[id(schema)] = (schema, schemas.resolve(schema))
    return found[1]


def root_schema(schema: Schema) -> dict[str, Any] | None:
    """The schema to walk a whole object with; CRD schemas rarely describe
    ``metadata``, so ObjectMeta's definition is put in (as upstream does)."""
    if schema is None:
        return None
    s = _resolve(schema)
    props = s.get("properties") or {}
    if _resolve(props.get("metadata")).get("properties"):
        return s
    meta = {"$ref": "#/$defs/" + _OBJECT_META}
    return {**s, "properties": {**props, "metadata": meta}}


def child_schema(schema: Schema, name: str) -> tuple[dict[str, Any], bool]:
    """(schema of a map entry or struct field, whether it is a named field)."""
    s = _resolve(schema)
    props = s.get("properties") or {}
    if name in props:
        return _resolve(props[name]), True
    extra = s.get("additionalProperties")
    return (_resolve(extra) if isinstance(extra, dict) else {}), False


def items_schema(schema: Schema) -> dict[str, Any]:
    return _resolve(_resolve(schema).get("items"))


def _atomic_map(s: dict[str, Any]) -> bool:
    return s.get("x-kubernetes-map-type") == "atomic"


def list_kind(schema: Schema) -> tuple[str, tuple[str, ...]]:
    """("atomic" | "set" | "map", key field names)."""
    s = _resolve(schema)
    list_type = s.get("x-kubernetes-list-type")
    if list_type == "set":
        return "set", ()
    if list_type == "map":
        return "map", tuple(s.get("x-kubernetes-list-map-keys") or ())
    if list_type is None and "merge" in str(s.get("x-kubernetes-patch-strategy", "")).split(","):
        merge_key = s.get("x-kubernetes-patch-merge-key")
        return ("map", (merge_key,)) if merge_key else ("set", ())
    return "atomic", ()


def item_element(kind: str, keys: tuple[str, ...], item_schema: Schema, item: Any,
                 position: int, strict: bool) -> PathElement:
    """The path element naming one item of a set or keyed list.

    ``strict`` (the applied configuration) rejects items without their keys; live
    objects fall back to the item's index so odd stored data never breaks a write.
    """
    if kind == "set":
        if isinstance(item, (dict, list)) and strict:
            raise InvalidApply("set lists may only hold scalar values")
        return set_value(item)
    if isinstance(item, dict):
        fields: dict[str, Any] = {}
        for name in keys:
            if name in item:
                fields[name] = item[name]
                continue
            default = child_schema(item_schema, name)[0].get("default", _KEY_DEFAULTS.get(name, MISSING))
            if default is MISSING:
                if strict:
                    raise InvalidApply(
                        f"associative list with keys has an element that omits key field {name!r} "
                        "(and doesn't have default value)")
                return index(position)
            fields[name] = default
        if fields:
            return key(fields)
    if strict:
        raise InvalidApply("associative list with keys may only hold objects with their keys")
    return index(position)


def _index_items(value: list[Any], schema: Schema, strict: bool) -> dict[PathElement, Any]:
    """Items of a non-atomic list by path element, in list order."""
    kind, keys = list_kind(schema)
    item_schema = items_schema(schema)
    out: dict[PathElement, Any] = {}
    for position, item in enumerate(value):
        pe = item_element(kind, keys, item_schema, item, position, strict)
        if pe in out:
            if strict:
                raise InvalidApply(f"duplicate entries for key {path_string((pe,))}")
            continue
        out[pe] = item
    return out


def _granular_map(value: Any, s: dict[str, Any]) -> bool:
    return isinstance(value, dict) and not _atomic_map(s)


def _granular_list(value: Any, s: dict[str, Any]) -> bool:
    return isinstance(value, list) and list_kind(s)[0] != "atomic"


def same(a: Any, b: Any) -> bool:
    """JSON equality (1 == 1.0, but True != 1)."""
    return freeze(a) == freeze(b)


# --- merge ----------------------------------------------------------------------

def merge(live: Any, applied: Any, schema: Schema) -> Any:
    """``applied`` set onto ``live``: the applied value wins at every leaf; maps and
    non-atomic lists are merged item by item. Neither input is modified, but the
    result shares unchanged sub-values with them."""
    if applied is MISSING:
        return live
    if live is MISSING or live is None:
        return applied
    s = _resolve(schema)
    if _granular_map(live, s) and _granular_map(applied, s) and (live or applied):
        out = {}
        for name in {**live, **applied}:
            value = merge(live.get(name, MISSING), applied.get(name, MISSING), child_schema(s, name)[0])
            if value is not None:  # an applied null clears the field
                out[name] = value
        return out
    if _granular_list(live, s) and _granular_list(applied, s) and (live or applied):
        return _merge_list(live, applied, s)
    return applied


def _merge_list(live: list[Any], applied: list[Any], s: dict[str, Any]) -> list[Any]:
    """Keyed or set items merged; applied order wins for the applied items and live-only
    items stay near their live neighbours (upstream's ordering)."""
    item_schema = items_schema(s)
    left = _index_items(live, s, strict=False)
    right = _index_items(applied, s, strict=True)
    lorder, rorder = list(left), list(right)
    # Items in both lists, in applied order: each is emitted when its turn comes.
    shared = [pe for pe in rorder if pe in left]
    out: list[Any] = []
    done: set[PathElement] = set()
    li = ri = si = 0

    def emit(pe: PathElement) -> None:
        done.add(pe)
        out.append(merge(left.get(pe, MISSING), right.get(pe, MISSING), item_schema))

    while li < len(lorder) or ri < len(rorder):
        lpe = lorder[li] if li < len(lorder) else None
        rpe = rorder[ri] if ri < len(rorder) else None
        upcoming = shared[si] if si < len(shared) else None
        if lpe is not None and lpe == rpe:
            emit(lpe)
            li, ri, si = li + 1, ri + 1, si + 1
            continue
        if lpe is not None and rpe is not None and lpe in right and upcoming is not None and upcoming != lpe:
            li += 1  # a shared item whose turn is later
            continue
        if lpe is not None and lpe not in right:
            emit(lpe)
            li += 1
            continue
        if lpe is not None and lpe in done:
            li += 1
            continue
        if rpe is not None:
            emit(rpe)
            ri += 1
            if rpe == upcoming:
                si += 1
    return out


# --- field sets -------------------------------------------------------------------

def field_set(obj: Any, schema: Schema) -> FieldSet:
    """Every path an object sets: leaves, list items, map entries, empty or null fields."""
    out: set[Path] = set()
    _collect(obj, _resolve(schema), (), out, strict=True)
    return frozenset(out)


def _collect(value: Any, s: dict[str, Any], path: Path, out: set[Path], strict: bool) -> None:
    if isinstance(value, dict):
        if _atomic_map(s):
            out.add(path)
            return
        for name, child in value.items():
            cs, named = child_schema(s, name)
            p = path + (field(name),)
            _collect(child, cs, p, out, strict)
            if child is None or child == {} or not named:
                out.add(p)
    elif isinstance(value, list):
        kind, keys = list_kind(s)
        if kind == "atomic":
            out.add(path)
            return
        item_schema = items_schema(s)
        for pe, item in _index_items(value, s, strict).items():
            p = path + (pe,)
            _collect(item, item_schema, p, out, strict)
            out.add(p)
    elif value is not None and path:
        out.add(path)


def with_named_fields(fieldset: FieldSet, schema: Schema) -> FieldSet:
    """Adds every struct field that has members below it (upstream's
    EnsureNamedFieldsAreMembers), so a struct counts as owned through its fields."""
    out = set(fieldset)
    named: dict[Path, tuple[dict[str, Any], bool]] = {(): (_resolve(schema), False)}
    for path in fieldset:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in named:
                parent = named[prefix[:-1]][0]
                kind, data = prefix[-1]
                named[prefix] = child_schema(parent, data) if kind == FIELD else (items_schema(parent), False)
            if named[prefix][1]:
                out.add(prefix)
    return frozenset(out)


# --- comparison ----------------------------------------------------------------------

class Comparison:
    """Paths added, modified and removed going from one object to another."""

    def __init__(self) -> None:
        self.added: set[Path] = set()
        self.modified: set[Path] = set()
        self.removed: set[Path] = set()

    def changed(self) -> FieldSet:
        return frozenset(self.added | self.modified)


def compare(old: Any, new: Any, schema: Schema, zero_structs: bool = False) -> Comparison:
    """``zero_structs``: ``old`` stands for a Go zero value, in which struct fields
    and required fields already exist, so only their contents count as added."""
    result = Comparison()
    _compare(old, new, _resolve(schema), (), result, False, zero_structs)
    return result


# The two shortcuts of _compare below; tests turn them off to check them against the full walk.
SHORTCUTS = True


def _add_all(new: Any, s: dict[str, Any], path: Path, c: Comparison) -> None:
    """What :func:`_compare` records for a subtree with nothing before it, without its
    per-node bookkeeping for two sides."""
    if isinstance(new, dict) and new and not _atomic_map(s):
        for name, value in new.items():
            _add_all(value, child_schema(s, name)[0], path + (field(name),), c)
        if path:
            c.added.add(path)
    elif isinstance(new, list) and new and list_kind(s)[0] != "atomic":
        item_schema = items_schema(s)
        for pe, item in _index_items(new, s, strict=False).items():
            _add_all(item, item_schema, path + (pe,), c)
        if path:
            c.added.add(path)
    else:
        c.added.add(path)


def _identical(a: Any, b: Any) -> bool:
    """Equal as JSON with the same types (stricter than :func:`same`), checked at C speed."""
    return a is not MISSING and b is not MISSING and same_json(a, b)


def _empty(value: Any) -> bool:
    return value is MISSING or value is None or value == {} or value == []


def _compare(old: Any, new: Any, s: dict[str, Any], path: Path, c: Comparison,
             in_zero: bool, zero_structs: bool) -> None:
    if SHORTCUTS and _identical(old, new):
        return  # nothing added, modified or removed below (most of an object, most of the time)
    # Only fields of a node that exists in the zero value exist there themselves.
    zero_structs = zero_structs and (in_zero or not path)
    if old is MISSING and not zero_structs and not in_zero and SHORTCUTS:
        _add_all(new, s, path, c)  # a new subtree: everything in it is added
        return
    both_empty = _empty(old) and _empty(new)
    # Written out rather than all(...) over a generator: this runs for every node.
    maps = (old is MISSING or old is None or isinstance(old, dict)) and (
        new is MISSING or new is None or isinstance(new, dict))
    lists = (old is MISSING or old is None or isinstance(old, list)) and (
        new is MISSING or new is None or isinstance(new, list))
    if maps and not both_empty and not _atomic_map(s):
        o = old if isinstance(old, dict) else {}
        n = new if isinstance(new, dict) else {}
        for name in {**o, **n}:
            cs, named = child_schema(s, name)
            zero = zero_structs and named and (bool(cs.get("properties")) or name in s.get("required", ()))
            _compare(o.get(name, MISSING), n.get(name, MISSING), cs, path + (field(name),), c, zero, zero_structs)
    elif lists and not both_empty and list_kind(s)[0] != "atomic":
        o = _index_items(old, s, strict=False) if isinstance(old, list) else {}
        n = _index_items(new, s, strict=False) if isinstance(new, list) else {}
        item_schema = items_schema(s)
        for pe in {**o, **n}:
            _compare(o.get(pe, MISSING), n.get(pe, MISSING), item_schema, path + (pe,), c, False, False)
    else:  # a leaf
        if old is MISSING:
            c.added.add(path)
        elif new is MISSING:
            c.removed.add(path)
        elif not same(old, new):
            c.modified.add(path)
        return
    # A map, struct or list item that appears or disappears as a whole.
    if path and old is MISSING and not in_zero:
        c.added.add(path)
    elif path and new is MISSING:
        c.removed.add(path)


# --- removal -------------------------------------------------------------------------

def remove_unowned(obj: Any, last: FieldSet, owned: FieldSet, schema: Schema) -> Any:
    """Drops what ``last`` covered and ``owned`` no longer does: a node is removed
    with everything under it when its path is in ``last`` but not in ``owned``
    (both including named fields). Returns a new object; ``obj`` is untouched."""
    prefixes = {p[:i] for p in last for i in range(1, len(p) + 1)}
    return _remove(obj, _resolve(schema), (), last, owned, prefixes)


def _remove(value: Any, s: dict[str, Any], path: Path, last: FieldSet, owned: FieldSet,
            prefixes: set[Path]) -> Any:
    if isinstance(value, dict) and not _atomic_map(s):
        out = {}
        for name, child in value.items():
            p = path + (field(name),)
            if p in last and p not in owned:
                continue
            if p in prefixes:
                child = _remove(child, child_schema(s, name)[0], p, last, owned, prefixes)
                if child is MISSING:
                    continue
            out[name] = child
        return out if out or not value else MISSING
    if isinstance(value, list) and list_kind(s)[0] != "atomic":
        item_schema = items_schema(s)
        kind, keys = list_kind(s)
        items = []
        for position, item in enumerate(value):
            p = path + (item_element(kind, keys, item_schema, item, position, strict=False),)
            if p in last and p not in owned:
                continue
            if p in prefixes:
                item = _remove(item, item_schema, p, last, owned, prefixes)
                if item is MISSING:
                    continue
            items.append(item)
        return items if items or not value else MISSING
    return value

"""Strategic merge patch (``application/strategic-merge-patch+json``).

Follows apimachinery's ``strategicpatch.StrategicMergeMapPatch`` as
kube-apiserver calls it (parallel lists merged, unmatched nulls ignored):

- maps merge recursively; ``null`` deletes a key;
- lists whose field has ``x-kubernetes-patch-strategy: merge`` merge item by
  item on ``x-kubernetes-patch-merge-key`` (lists of primitives become a set
  union); other lists, and maps with strategy ``replace``, are replaced;
- directives: ``$patch: replace|delete`` on maps, ``$patch: replace|delete``
  items in keyed lists, ``$retainKeys``, ``$setElementOrder/<field>`` and
  ``$deleteFromPrimitiveList/<field>``;
- fields the schema does not describe merge like a JSON merge patch.

Values copied in where there was nothing lose their nulls and directives, as
they do on a real server when the result is decoded into the typed object.

Errors carry the status the apiserver answers with (handlers/patch.go
``interpretStrategicMergePatchError``): 400 for malformed ``$retainKeys``,
``$setElementOrder`` and ``$deleteFromPrimitiveList``, 422 for lists of lists,
500 for the rest (unknown ``$patch`` value, missing merge key, ...), which
upstream returns as plain errors.
"""

from __future__ import annotations

from typing import Any

from sampan.api import schemas
from sampan.api.patch.common import PatchError, clone, json_equal
from sampan.api.patch.strategic_order import (
    normalize_order,
    partition,
    require_merge_key,
    validate_set_order,
)

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder"
DELETE_FROM_LIST = "$deleteFromPrimitiveList"

ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_SET_ORDER = "invalid patch format of setElementOrder list"
ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_LIST_OF_LISTS = "lists of lists are not supported"

_ABSENT = object()


def apply_strategic_merge_patch(doc: dict, patch: dict, schema: dict) -> dict:
    """Applies a strategic merge ``patch`` to a copy of ``doc``.

    ``schema`` is the kind's top-level schema (``schemas.schema_for(...)``).
    """
    if not isinstance(patch, dict):
        raise PatchError("json: cannot unmarshal strategic merge patch: expected a JSON object", 400)
    return _merge_map(clone(doc), clone(patch), schema or {})


# -- schema lookups ------------------------------------------------------------


def _field(schema: dict, key: str) -> tuple[dict, str, str]:
    """(value schema, patch strategy, merge key) of ``key`` in an object schema."""
    resolved = schemas.resolve(schema)
    raw = (resolved.get("properties") or {}).get(key)
    if raw is None:
        extra = resolved.get("additionalProperties")
        raw = extra if isinstance(extra, dict) else {}
    strategies = [s for s in str(raw.get("x-kubernetes-patch-strategy", "")).split(",") if s]
    # retainKeys only says the client may send $retainKeys; it does not change merging.
    rest = [s for s in strategies if s != "retainKeys"]
    if len(rest) > 1 or len(strategies) > 2:
        raise PatchError(f"unexpected patch strategy: {strategies}", 500)
    return schemas.resolve(raw), (rest[0] if rest else ""), str(raw.get("x-kubernetes-patch-merge-key", ""))


def _sub_key(key: str, prefix: str, error: str) -> str:
    head, sep, tail = key.partition("/")
    if head != prefix or not sep:
        raise PatchError(error, 400)
    return tail


# -- cleaning values that are copied in ----------------------------------------


def _is_directive_key(key: str) -> bool:
    return key == RETAIN_KEYS or key.startswith(SET_ORDER + "/") or key.startswith(DELETE_FROM_LIST + "/")


def _clean(value: Any) -> tuple[Any, bool]:
    """``value`` without null members and directives; False if it is itself a directive."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        out = {}
        for k, v in value.items():
            if v is None or _is_directive_key(k):
                continue
            v, keep = _clean(v)
            if keep:
                out[k] = v
        return out, True
    if isinstance(value, list):
        items = []
        for v in value:
            v, keep = _clean(v)
            if keep:
                items.append(v)
        return items, True
    return value, True


def _set_clean(target: dict, key: str, value: Any) -> None:
    value, keep = _clean(value)
    if keep:
        target[key] = value
    else:
        target.pop(key, None)


# -- maps ----------------------------------------------------------------------


def _merge_map(original: dict, patch: dict, schema: dict) -> dict:
    """Merges ``patch`` into ``original`` (both already private copies)."""
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return _clean(patch)[0]
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {directive} in map: {patch}", 500)

    _apply_retain_keys(original, patch)
    _apply_set_element_order(original, patch, schema)

    for key, value in patch.items():
        is_delete_list = key.startswith(DELETE_FROM_LIST)
        if is_delete_list:
            key = _sub_key(key, DELETE_FROM_LIST, ERR_PRIMITIVE_LIST)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key, _ABSENT)
        if current is _ABSENT or _kind(current) != _kind(value):
            if not is_delete_list:
                _set_clean(original, key, value)
            continue
        if isinstance(value, dict):
            sub, strategy, _ = _field(schema, key)
            if strategy == "replace":
                value.pop(DIRECTIVE, None)
                original[key] = _clean(value)[0]
            else:
                original[key] = _merge_map(current, value, sub)
        elif isinstance(value, list):
            sub, strategy, merge_key = _field(schema, key)
            original[key] = _merge_list_field(current, value, sub, strategy, merge_key, is_delete_list)
        else:
            original[key] = value
    return original



def _kind(value: Any) -> str:
    """Maps merge with maps and lists with lists; anything else replaces."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "null" if value is None else "scalar"


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list):
        raise PatchError(ERR_RETAIN_KEYS, 400)
    for key, value in patch.items():
        if value is None or key.startswith(DELETE_FROM_LIST) or key.startswith(SET_ORDER):
            continue
        if key not in keep:
            raise PatchError(ERR_RETAIN_KEYS, 400)
    for key in [k for k in original if k not in keep]:
        del original[key]


def _apply_set_element_order(original: dict, patch: dict, schema: dict) -> None:
    """Merges each list named by a ``$setElementOrder/<field>`` and puts it in that order."""
    for directive in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise PatchError(f"expected a list, but received a {type(order).__name__}", 500)
        key = _sub_key(directive, SET_ORDER, ERR_SET_ORDER)
        in_original, in_patch = key in original, key in patch
        live = original.get(key, [])
        patch_list = patch.get(key, [])
        for value in (live, patch_list):
            if not isinstance(value, list):
                raise PatchError(f"expected a list, but received a {type(value).__name__}", 500)
        sub, strategy, merge_key = _field(schema, key)
        validate_set_order(patch_list, order, merge_key)
        if in_original and in_patch:
            merged = _merge_list_field(live, patch_list, sub, strategy, merge_key, False)
        elif in_patch:
            merged = _clean(patch_list)[0]
        elif in_original:
            merged = live
        else:
            continue
        _element_kind(live, patch_list)
        listed, server_only = partition(merged, order, merge_key)
        original[key] = normalize_order(listed, server_only, order, live, merge_key)
        patch.pop(key, None)


# -- lists ---------------------------------------------------------------------


def _merge_list_field(
    original: list, patch: list, item_schema: dict, strategy: str, merge_key: str, is_delete_list: bool
) -> list:
    if strategy != "merge" and not is_delete_list:
        return _clean(patch)[0]
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    item_schema = schemas.items_schema(item_schema)
    if kind is not dict:
        if is_delete_list:
            return [v for v in original if not any(json_equal(v, d) for d in patch)]
        merged = _unique(original + patch)
        patch_items = patch
    else:
        if not merge_key:
            raise PatchError("cannot merge lists without merge key", 500)
        original, patch_items = _special_items(original, patch, merge_key)
        merged = _merge_by_key(original, patch_items, merge_key, item_schema)
    listed, server_only = partition(merged, patch_items, merge_key)
    return normalize_order(listed, server_only, patch_items, original, merge_key)


def _element_kind(*lists: list) -> type | None:
    """The one type all items share; upstream rejects mixed lists and lists of lists."""
    kind: type | None = None
    for items in lists:
        for item in items:
            item_kind = type(item)
            if kind is None:
                if item_kind is list:
                    raise PatchError(ERR_LIST_OF_LISTS, 422)
                kind = item_kind
            elif item_kind is not kind:
                raise PatchError(f"list element types are not identical: {list(lists)}", 500)
    return kind


def _unique(items: list) -> list:
    out: list = []
    for item in items:
        if not any(json_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _special_items(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """Applies ``$patch`` items; returns (original, patch items without directives)."""
    plain: list = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}", 500)
            doomed = item[merge_key]
            original = [o for o in original if not (merge_key in o and json_equal(o[merge_key], doomed))]
        elif directive == "replace":
            replace = True  # keep scanning: later items may still be invalid
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch", 500)
        else:
            raise PatchError(f"unknown patch type: {directive} in map: {item}", 500)
    if replace:
        return [_clean(item)[0] for item in plain], []
    return original, plain


def _merge_by_key(original: list, patch: list, merge_key: str, item_schema: dict) -> list:
    merged = list(original)
    require_merge_key(patch, merge_key)
    for item in patch:
        for i, existing in enumerate(merged):
            if merge_key in existing and json_equal(existing[merge_key], item[merge_key]):
                merged[i] = _merge_map(existing, item, item_schema)
                break
        else:
            merged.append(_clean(item)[0])
    return merged

"""Element order of merged lists in a strategic merge patch.

Upstream's rule (apimachinery strategicpatch, "preserve order in strategic merge
patch"): items named by the patch (or by ``$setElementOrder``) come in that
order, items only the server has keep their live order, and the two runs are
interleaved using the live order where both items appear in it. Precedence is
``$setElementOrder`` > order in the patch list > order in the live list.
"""

from __future__ import annotations

from typing import Any

from sampan.api.patch.common import PatchError, json_equal

_MISSING = object()


def key_of(item: Any, merge_key: str) -> Any:
    """What identifies a list item: its merge-key value, or the item itself."""
    if not merge_key:
        return item
    return item.get(merge_key, _MISSING) if isinstance(item, dict) else _MISSING


def index_of(items: list, item: Any, merge_key: str) -> int:
    wanted = key_of(item, merge_key)
    for i, candidate in enumerate(items):
        if _same(key_of(candidate, merge_key), wanted):
            return i
    return -1


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return json_equal(a, b)


def require_merge_key(items: list, merge_key: str) -> None:
    for item in items:
        if not isinstance(item, dict):
            raise PatchError(f"expected a map, but received a {type(item).__name__}", 500)
        if merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}", 500)


def partition(items: list, by: list, merge_key: str) -> tuple[list, list]:
    """Splits ``items`` into those present in ``by`` and the rest."""
    if merge_key:
        require_merge_key(items, merge_key)
    present: list = []
    rest: list = []
    for item in items:
        (present if index_of(by, item, merge_key) >= 0 else rest).append(item)
    return present, rest


def _sort_by(items: list, order: list, merge_key: str) -> list:
    if merge_key:
        require_merge_key(items, merge_key)
        require_merge_key(order, merge_key)
    size = len(order)

    def rank(item: Any) -> int:
        i = index_of(order, item, merge_key)
        return i if i >= 0 else size

    return sorted(items, key=rank)  # stable: unranked items keep their order


def normalize_order(patch_items: list, server_only: list, patch_order: list, server_order: list, merge_key: str) -> list:
    """Sorts each run by its order list, then interleaves them by live order."""
    right = _sort_by(patch_items, patch_order, merge_key)
    left = _sort_by(server_only, server_order, merge_key)
    result: list = []
    i = j = 0
    while i < len(left) and j < len(right):
        li = index_of(server_order, left[i], merge_key)
        ri = index_of(server_order, right[j], merge_key)
        if li >= 0 and ri >= 0 and li < ri:
            result.append(left[i])
            i += 1
        else:
            result.append(right[j])
            j += 1
    return result + left[i:] + right[j:]


def validate_set_order(patch_list: list, order: list, merge_key: str) -> None:
    """The patch list must be a subsequence of ``$setElementOrder`` (deletions aside)."""
    if not order or not patch_list:
        return
    if merge_key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise PatchError(f"expected a map, but received a {type(item).__name__}", 500)
        patch_list = [item for item in patch_list if item.get("$patch") != "delete"]
    p = s = 0
    while p < len(patch_list) and s < len(order):
        item = patch_list[p]
        if isinstance(item, dict) and "$patch" in item:
            p += 1
            continue
        if merge_key:
            require_merge_key([item, order[s]], merge_key)
        if _same(key_of(item, merge_key), key_of(order[s], merge_key)):
            p += 1
        s += 1
    if p < len(patch_list):
        raise PatchError(
            f"The order in patch list:\n{patch_list}\n doesn't match $setElementOrder list:\n{order}\n", 500
        )

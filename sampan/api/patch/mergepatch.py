"""RFC 7386 JSON merge patch (``application/merge-patch+json``).

Matches the library kube-apiserver uses (evanphx/json-patch v4): ``null`` deletes
a member, objects merge recursively, anything else (lists included) replaces the
target. Values added where there was nothing (or a non-object) lose their
``null`` members, as they would by merging into an empty object.
"""

from __future__ import annotations

from typing import Any

from sampan.api.patch.common import PatchError, clone


def apply_merge_patch(doc: dict, patch: dict) -> dict:
    """Merges ``patch`` into a copy of ``doc``.

    A patch body that is not a JSON object is rejected with 400 BadRequest
    ("Invalid JSON Patch"), as kube-apiserver does; nested non-object values
    replace their target.
    """
    if not isinstance(patch, dict):
        raise PatchError("Invalid JSON Patch", 400)
    return merge_patch_value(doc, patch)


def merge_patch_value(target: Any, patch: Any) -> Any:
    """The RFC 7386 ``MergePatch(target, patch)`` function for any JSON values."""
    if not isinstance(patch, dict):
        # A non-object patch replaces the target; nulls inside are kept only
        # when replacing an object, as upstream does.
        return clone(patch) if isinstance(target, dict) else _prune_nulls(patch)
    result = clone(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
            continue
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge_into(current, value)
        elif isinstance(current, dict):
            target[key] = clone(value)
        else:
            target[key] = _prune_nulls(value)


def _prune_nulls(value: Any) -> Any:
    """A copy of ``value`` without null object members (list items stay)."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value

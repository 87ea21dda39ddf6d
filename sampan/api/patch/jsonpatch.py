"""RFC 6902 JSON patch (``application/json-patch+json``).

Behaves like the library kube-apiserver uses (evanphx/json-patch v4), including
its departures from the RFC that clients may rely on:

- ``replace`` of a missing object member sets it (acts like ``add``);
- negative array indices count from the end (``-1`` is the last element);
- a member whose value is ``null`` counts as absent for ``test``, so
  ``{"op": "test", "value": null}`` passes on both;
- ``copy`` from a missing object member copies ``null``.

Errors: a body that is not a list of objects is 400 BadRequest, more than
10000 operations is 413, and every operation that does not apply is 422 Invalid
(apiserver handlers/patch.go answers ``NewGenericServerResponse(422, ...)``).
"""

from __future__ import annotations

import re
from typing import Any

from sampan.api.patch.common import PatchError, PatchTestFailed, clone, json_equal

MAX_OPERATIONS = 10000
_INDEX = re.compile(r"[+-]?[0-9]+")
_MISSING = object()


def apply_json_patch(doc: dict, operations: list) -> dict:
    """Applies RFC 6902 ``operations`` to a copy of ``doc`` and returns it."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise PatchError("json: cannot unmarshal patch: expected a list of operation objects", 400)
    if len(operations) > MAX_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {len(operations)}", 413
        )
    root = clone(doc)
    for op in operations:
        kind = op.get("op")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise PatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
        handler(root, op)
    return root


def _tokens(path: Any, what: str = "path") -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"operation missing {what} field" if path is None else f"invalid {what}: {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'doc is missing path: "{path}"')
    # "~1" must be decoded before "~0" so "~01" means "~1", not "/".
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, size: int, path: str) -> int:
    """An existing element's index; negative indices count from the end."""
    if not _INDEX.fullmatch(token):
        raise PatchError(f"value was not a proper array index: '{token}' (path {path})")
    idx = int(token)
    if idx >= size or idx < -size:
        raise PatchError(f"Unable to access invalid index: {idx} (path {path})")
    return idx + size if idx < 0 else idx


def _parent(root: dict, path: Any, op: str, what: str = "path") -> tuple[dict | list, str]:
    """The container holding the last token of ``path``, and that token."""
    tokens = _tokens(path, what)
    if not tokens:
        raise PatchError(f'{op} operation does not apply: doc is missing {what}: "{path}"')
    node: Any = root
    for token in tokens[:-1]:
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and _INDEX.fullmatch(token) and -len(node) <= int(token) < len(node):
            node = node[int(token)]
        else:
            node = None
        if not isinstance(node, (dict, list)):
            raise PatchError(f'{op} operation does not apply: doc is missing {what}: "{path}"')
    return node, tokens[-1]


def _get(container: dict | list, key: str, path: str) -> Any:
    """The value at ``key``; a missing object member reads as ``_MISSING``."""
    if isinstance(container, dict):
        return container.get(key, _MISSING)
    return container[_index(key, len(container), path)]


def _insert(container: dict | list, key: str, value: Any, path: str) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    # One past the end is a valid insertion point.
    container.insert(_index(key, len(container) + 1, path), value)


def _delete(container: dict | list, key: str, path: str) -> Any:
    if isinstance(container, dict):
        if key not in container:
            raise PatchError(f"Unable to remove nonexistent key: {key}: missing value (path {path})")
        return container.pop(key)
    return container.pop(_index(key, len(container), path))


def _add(root: dict, op: dict) -> None:
    path = op.get("path")
    container, key = _parent(root, path, "add")
    _insert(container, key, clone(op.get("value")), path)


def _remove(root: dict, op: dict) -> None:
    path = op.get("path")
    container, key = _parent(root, path, "remove")
    _delete(container, key, path)


def _replace(root: dict, op: dict) -> None:
    path = op.get("path")
    container, key = _parent(root, path, "replace")
    value = clone(op.get("value"))
    if isinstance(container, dict):
        container[key] = value
    else:
        container[_index(key, len(container), path)] = value


def _move(root: dict, op: dict) -> None:
    source = op.get("from")
    container, key = _parent(root, source, "move", "from")
    value = _delete(container, key, source)
    path = op.get("path")
    container, key = _parent(root, path, "move")
    _insert(container, key, value, path)


def _copy(root: dict, op: dict) -> None:
    source = op.get("from")
    container, key = _parent(root, source, "copy", "from")
    value = _get(container, key, source)
    path = op.get("path")
    container, key = _parent(root, path, "copy")
    _insert(container, key, None if value is _MISSING else clone(value), path)


def _test(root: dict, op: dict) -> None:
    path = op.get("path")
    if path == "":
        actual: Any = root
    else:
        container, key = _parent(root, path, "test")
        actual = _get(container, key, path)
    expected = op.get("value", _MISSING)
    if actual is _MISSING or actual is None:
        if "value" in op and expected is None:
            return
    elif expected is not _MISSING and expected is not None and json_equal(actual, expected):
        return
    raise PatchTestFailed(f"testing value {path} failed: test failed")


_HANDLERS = {
    "add": _add,
    "remove": _remove,
    "replace": _replace,
    "move": _move,
    "copy": _copy,
    "test": _test,
}

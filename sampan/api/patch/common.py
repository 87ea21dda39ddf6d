"""Errors and JSON-value helpers shared by the patch implementations."""

from __future__ import annotations

from typing import Any

import orjson


class PatchError(ValueError):
    """A patch could not be applied.

    ``code`` is the HTTP status a kube-apiserver answers with for this failure:
    400 (BadRequest) for malformed patch documents, 422 (Invalid) for JSON-patch
    operations that do not apply, 413 for too many operations, and 500 for
    strategic-merge errors upstream reports as plain errors (e.g. an unknown
    ``$patch`` directive or a missing merge key).
    """

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PatchTestFailed(PatchError):
    """An RFC 6902 ``test`` operation did not match (the server answers 422 Invalid)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 422)


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (faster than ``copy.deepcopy`` for plain data)."""
    if isinstance(value, (dict, list)):
        try:
            # Whole objects (a patch's target) copy several times faster through orjson.
            return orjson.loads(orjson.dumps(value))
        except (TypeError, orjson.JSONEncodeError):
            return _clone(value)  # not plain JSON (integers past 64 bits, keys not strings)
    return value


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike ``==`` in Python, ``true`` never equals ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float)) and a == b
    return type(a) is type(b) and a == b

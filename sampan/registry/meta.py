"""Small helpers over object metadata, shared by the registry modules."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

Obj = dict[str, Any]


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def timestamp(when: datetime | None = None) -> str:
    """RFC 3339 with second precision and a ``Z``, as upstream serializes metav1.Time."""
    if when is None:
        # Every write stamps the current second, often twice: format it once per second.
        second = int(time.time())
        if second != _last_stamp[0]:
            _last_stamp[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))]
        return _last_stamp[1]
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


_last_stamp: list[Any] = [-1, ""]


def timestamp_in(seconds: int) -> str:
    return timestamp(now() + timedelta(seconds=seconds))


def new_uid() -> str:
    """A random (version 4) UUID, like ``uuid.uuid4()`` but drawing randomness from the
    OS in blocks rather than one system call per UID."""
    global _uid_pool, _uid_offset
    if _uid_offset >= len(_uid_pool):
        _uid_pool, _uid_offset = os.urandom(16 * 256), 0
    raw = _uid_pool[_uid_offset:_uid_offset + 16]
    _uid_offset += 16
    return str(uuid.UUID(bytes=raw, version=4))


_uid_pool, _uid_offset = b"", 0


def _reset_uid_pool() -> None:
    global _uid_pool, _uid_offset
    _uid_pool, _uid_offset = b"", 0  # a forked child must not repeat its parent's UIDs


os.register_at_fork(after_in_child=_reset_uid_pool)


def meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = obj["metadata"] = {}
    return m


def encode(obj: Obj) -> bytes:
    """Storage form: the object without its resourceVersion (the store revision is it)."""
    m = obj.get("metadata") or {}
    if "resourceVersion" in m:
        obj = {**obj, "metadata": {k: v for k, v in m.items() if k != "resourceVersion"}}
    return orjson.dumps(obj)


def decode(value: bytes, revision: int) -> Obj:
    obj = orjson.loads(value)
    meta(obj)["resourceVersion"] = str(revision)
    return obj



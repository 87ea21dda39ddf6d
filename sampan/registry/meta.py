"""Small helpers over object metadata, shared by the registry modules."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

Obj = dict[str, Any]


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def timestamp(when: datetime | None = None) -> str:
    """RFC 3339 with second precision and a ``Z``, as upstream serializes metav1.Time."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp_in(seconds: int) -> str:
    return timestamp(now() + timedelta(seconds=seconds))


def new_uid() -> str:
    return str(uuid.uuid4())


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


def deep_copy(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


def without(obj: Obj, *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}

"""The store protocol every backend implements, its value types and its errors.

Keys are strings such as ``/registry/pods/default/web-0``; values are opaque bytes
(the registry encodes objects). The revision is a cluster-wide counter that grows
with every write; it becomes the object's ``resourceVersion``.
"""

from __future__ import annotations

import base64
import binascii
import inspect
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Literal, Protocol

import orjson

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


class StoreError(Exception):
    """Base of every error a backend raises on purpose."""


class NotFound(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class AlreadyExists(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key already exists: {key}")
        self.key = key


class Conflict(StoreError):
    """A precondition (expected revision or caller check) did not hold."""

    def __init__(self, key: str, message: str = "") -> None:
        super().__init__(message or f"precondition failed for {key}")
        self.key = key


class Compacted(StoreError):
    """The requested revision is older than what the store still holds."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"too old resource version: {requested} ({compacted})")
        self.requested = requested
        self.compacted = compacted


class InvalidContinue(StoreError):
    """A continue token that cannot be decoded or belongs to another prefix."""


class Unavailable(StoreError):
    """The backend cannot serve right now (disk full, read-only, unreachable etcd...)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    revision: int  # the revision that last modified the key
    create_revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the store revision the list was read at
    continue_token: str | None = None
    remaining: int | None = None  # keys left after this page, when known


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETED, ``value`` is the last value before deletion.

    For BOOKMARK, only ``revision`` is meaningful; ``initial_events_end`` marks the
    bookmark that closes the initial events of a ``send_initial`` watch.
    """

    type: EventType
    key: str
    value: bytes | None
    revision: int
    prev_value: bytes | None = None
    initial_events_end: bool = False


@dataclass(frozen=True, slots=True)
class Preconditions:
    """Conditions checked against the current value before an update or delete.

    ``revision``: the key must be at exactly this revision.
    ``check``: called with the current value; raise (e.g. Conflict) to refuse.
    """

    revision: int | None = None
    check: Callable[[KeyValue], None] | None = None

    def verify(self, current: KeyValue) -> None:
        if self.revision is not None and current.revision != self.revision:
            raise Conflict(
                current.key,
                f"revision precondition failed for {current.key}: "
                f"expected {self.revision}, have {current.revision}",
            )
        if self.check is not None:
            self.check(current)


TryUpdate = Callable[[KeyValue | None], bytes | Awaitable[bytes]]
"""Receives the current value (None if absent and absence is allowed) and returns the
new value. It may be called several times when writers race; it must not have side
effects outside its return value. Raising aborts the update."""


async def next_value(key: str, current: KeyValue | None, try_update: TryUpdate,
                     preconditions: Preconditions | None, ignore_not_found: bool) -> bytes:
    """One attempt of a guaranteed update: the checks every store makes on ``current``,
    then ``try_update``'s new value."""
    if current is None and not ignore_not_found:
        raise NotFound(key)
    if current is not None and preconditions is not None:
        preconditions.verify(current)
    new_value = try_update(current)
    if inspect.isawaitable(new_value):
        new_value = await new_value
    return new_value


class Watch(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def __anext__(self) -> Event: ...

    def close(self) -> None: ...


class Store(Protocol):
    async def get(self, key: str) -> KeyValue: ...

    async def list(
        self,
        prefix: str,
        limit: int = 0,
        continue_token: str | None = None,
        at_revision: int = 0,
    ) -> ListResult:
        """Keys under ``prefix`` in key order. ``at_revision`` 0 means the latest.
        A continue token pins the revision of the first page."""
        ...

    async def count(self, prefix: str) -> int: ...

    async def create(self, key: str, value: bytes) -> KeyValue: ...

    async def guaranteed_update(
        self,
        key: str,
        try_update: TryUpdate,
        preconditions: Preconditions | None = None,
        ignore_not_found: bool = False,
        cached: KeyValue | None = None,
    ) -> KeyValue:
        """Read-modify-write with the compare-and-swap retry loop inside the backend.
        If the new value equals the current one nothing is written. ``cached``: the
        caller's recent copy of the current value (upstream's cachedExistingObject); a
        backend may start from it instead of reading, and must then redo the read when
        it proves stale or when ``try_update`` fails on it."""
        ...

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> KeyValue:
        """Returns the deleted value, with ``revision`` set to the deletion revision."""
        ...

    async def watch(
        self,
        prefix: str,
        since_revision: int = 0,
        send_initial: bool = False,
        bookmark_interval: float | None = None,
    ) -> Watch:
        """Events under ``prefix`` with revision > ``since_revision`` (0: from now).
        ``send_initial``: first an ADDED per existing key (as of ``since_revision``,
        or now), then a BOOKMARK with ``initial_events_end``. Raises or yields
        Compacted when ``since_revision`` is older than the retained history."""
        ...

    async def compact(self, revision: int) -> None: ...

    async def current_revision(self) -> int: ...

    async def close(self) -> None: ...


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"


def encode_continue(prefix: str, revision: int, next_key: str) -> str:
    """An opaque continue token: the list's revision and the key to resume at,
    relative to the prefix so a token cannot be replayed against another one."""
    if not next_key.startswith(prefix):
        raise ValueError("next key outside prefix")
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": next_key[len(prefix) :]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(prefix: str, token: str) -> tuple[int, str]:
    """Returns (revision, key to resume at) or raises InvalidContinue."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        revision, start = data["rv"], data["start"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidContinue(f"continue key is not valid: {exc}") from exc
    if data.get("v") != "meta.k8s.io/v1" or not isinstance(revision, int) or not isinstance(start, str):
        raise InvalidContinue("continue key is not valid: unknown version or shape")
    # Keys under a collection prefix never start with "/"; under the empty prefix (the watch
    # cache's load) every key does.
    if revision <= 0 or (prefix and start.startswith("/")) or ".." in start.split("/"):
        raise InvalidContinue("continue key is not valid: bad revision or key")
    return revision, prefix + start

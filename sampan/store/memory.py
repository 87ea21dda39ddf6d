"""An in-memory store with full revision history (until compacted). For tests."""

from __future__ import annotations

from dataclasses import dataclass

from sortedcontainers import SortedDict

from .interface import (
    AlreadyExists,
    Compacted,
    Event,
    KeyValue,
    ListResult,
    NotFound,
    Preconditions,
    TryUpdate,
    decode_continue,
    encode_continue,
    prefix_end,
    next_value,
)
from .watchhub import HubWatch, WatchHub


@dataclass(frozen=True, slots=True)
class _Version:
    revision: int
    value: bytes | None  # None: the key was deleted at this revision
    create_revision: int


class MemoryStore:
    def __init__(self) -> None:
        self._versions: SortedDict[str, list[_Version]] = SortedDict()
        self._revision = 0
        self._compacted = 0
        self._hub = WatchHub()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._hub.fail_all(NotFound("store closed"))

    # -- reads ------------------------------------------------------------------
    def _at(self, key: str, revision: int) -> KeyValue | None:
        for version in reversed(self._versions.get(key, ())):
            if version.revision <= revision:
                if version.value is None:
                    return None
                return KeyValue(key, version.value, version.revision, version.create_revision)
        return None

    def _current(self, key: str) -> KeyValue | None:
        return self._at(key, self._revision)

    async def get(self, key: str) -> KeyValue:
        kv = self._current(key)
        if kv is None:
            raise NotFound(key)
        return kv

    async def current_revision(self) -> int:
        return self._revision

    def _check_revision(self, revision: int) -> None:
        if revision and revision < self._compacted:
            raise Compacted(revision, self._compacted)

    async def list(
        self, prefix: str, limit: int = 0, continue_token: str | None = None, at_revision: int = 0
    ) -> ListResult:
        start = prefix
        if continue_token:
            at_revision, start = decode_continue(prefix, continue_token)
        self._check_revision(at_revision)
        revision = at_revision or self._revision
        items: list[KeyValue] = []
        keys = self._versions.irange(start, prefix_end(prefix), inclusive=(True, False))
        for key in keys:
            kv = self._at(key, revision)
            if kv is None:
                continue
            if limit and len(items) == limit:
                remaining = sum(
                    1
                    for k in self._versions.irange(key, prefix_end(prefix), inclusive=(True, False))
                    if self._at(k, revision) is not None
                )
                return ListResult(items, revision, encode_continue(prefix, revision, key), remaining)
            items.append(kv)
        return ListResult(items, revision)

    async def count(self, prefix: str) -> int:
        keys = self._versions.irange(prefix, prefix_end(prefix), inclusive=(True, False))
        return sum(1 for key in keys if self._current(key) is not None)

    # -- writes -----------------------------------------------------------------
    def _write(self, key: str, value: bytes | None, create_revision: int, prev: KeyValue | None) -> KeyValue:
        self._revision += 1
        self._versions.setdefault(key, []).append(_Version(self._revision, value, create_revision))
        if value is None:
            assert prev is not None
            event = Event("DELETED", key, prev.value, self._revision, prev.value)
            result = KeyValue(key, prev.value, self._revision, prev.create_revision)
        else:
            kind = "MODIFIED" if prev else "ADDED"
            event = Event(kind, key, value, self._revision, prev.value if prev else None)
            result = KeyValue(key, value, self._revision, create_revision)
        self._hub.publish([event])
        return result

    async def create(self, key: str, value: bytes) -> KeyValue:
        if self._current(key) is not None:
            raise AlreadyExists(key)
        return self._write(key, value, self._revision + 1, None)

    async def guaranteed_update(
        self,
        key: str,
        try_update: TryUpdate,
        preconditions: Preconditions | None = None,
        ignore_not_found: bool = False,
        cached: KeyValue | None = None,  # reads are free here: always the live value
    ) -> KeyValue:
        while True:
            current = self._current(key)
            new_value = await next_value(key, current, try_update, preconditions, ignore_not_found)
            if self._current(key) != current:
                continue  # someone wrote while try_update awaited: retry on fresh state
            if current is not None and new_value == current.value:
                return current
            create_revision = current.create_revision if current else self._revision + 1
            return self._write(key, new_value, create_revision, current)

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> KeyValue:
        current = self._current(key)
        if current is None:
            raise NotFound(key)
        if preconditions is not None:
            preconditions.verify(current)
        return self._write(key, None, current.create_revision, current)

    async def compact(self, revision: int) -> None:
        revision = min(revision, self._revision)
        if revision <= self._compacted:
            return
        for key in list(self._versions):
            versions = self._versions[key]
            older = [v for v in versions if v.revision <= revision]
            keep = [v for v in versions if v.revision > revision]
            if older and older[-1].value is not None:
                keep.insert(0, older[-1])
            if keep:
                self._versions[key] = keep
            else:
                del self._versions[key]
        self._compacted = revision

    # -- watch ------------------------------------------------------------------
    async def watch(
        self,
        prefix: str,
        since_revision: int = 0,
        send_initial: bool = False,
        bookmark_interval: float | None = None,
    ) -> HubWatch:
        return await self._hub.open(
            prefix, since_revision, send_initial, bookmark_interval, self._backlog(prefix), self._snapshot(prefix)
        )

    def _snapshot(self, prefix: str):
        async def snapshot(revision: int) -> tuple[list[KeyValue], int]:
            result = await self.list(prefix, at_revision=revision)
            return result.items, result.revision

        return snapshot

    def _backlog(self, prefix: str):
        async def backlog(since: int) -> list[Event]:
            self._check_revision(since)
            events: list[Event] = []
            keys = self._versions.irange(prefix, prefix_end(prefix), inclusive=(True, False))
            for key in keys:
                previous: bytes | None = None
                for version in self._versions[key]:
                    if version.revision > since:
                        if version.value is None:
                            events.append(Event("DELETED", key, previous, version.revision, previous))
                        else:
                            kind = "ADDED" if version.create_revision == version.revision else "MODIFIED"
                            events.append(Event(kind, key, version.value, version.revision, previous))
                    previous = version.value
            events.sort(key=lambda e: e.revision)
            return events

        return backlog

"""A watch cache: the same store protocol, served from memory over any backend.

It lists the backend once, then follows one backend watch. Reads of the latest state
come from memory (after making sure the cache has caught up with the backend, so a
client always reads its own writes); watches are fanned out from that single stream
without further backend reads, replaying from a bounded window of recent events.
Older revisions than the window are Compacted; exact-revision reads go to the backend.
Values are held deflated (packing.py): the cache holds every object of the cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from sortedcontainers import SortedDict

from .interface import (
    Compacted,
    Event,
    KeyValue,
    ListResult,
    NotFound,
    Preconditions,
    Store,
    StoreError,
    TryUpdate,
    Unavailable,
    Watch,
    decode_continue,
    encode_continue,
    prefix_end,
)
from .packing import Packer, Stored
from .watchhub import HubWatch, WatchHub

log = logging.getLogger(__name__)
CATCH_UP_TIMEOUT = 10.0
LOAD_PAGE = 2000


class _Item:
    """A key's latest value, packed."""

    __slots__ = ("stored", "revision", "create_revision")

    def __init__(self, stored: Stored, revision: int, create_revision: int) -> None:
        self.stored = stored
        self.revision = revision
        self.create_revision = create_revision


class _Change:
    """A window event with packed values (a value is often the same object as an item's)."""

    __slots__ = ("type", "key", "revision", "value", "prev_value")

    def __init__(self, type_: str, key: str, revision: int, value: Stored | None, prev_value: Stored | None) -> None:
        self.type = type_
        self.key = key
        self.revision = revision
        self.value = value
        self.prev_value = prev_value


class WatchCache:
    def __init__(self, backend: Store, prefix: str = "", window: int = 10_000) -> None:
        self.backend = backend
        self.prefix = prefix
        self._items: SortedDict[str, _Item] = SortedDict()
        self._window: deque[_Change] = deque(maxlen=window)
        self._packer = Packer()
        self._window_start = 0  # every event after this revision is in the window
        self.revision = 0
        self._hub = WatchHub()
        self._progress = asyncio.Condition()
        self._follower: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        await self._load()
        # Subscribe before returning: a watch "from now" opened later would miss the
        # writes made in between (on an empty store the list revision is 0 = now).
        first = await self.backend.watch(self.prefix, self.revision, bookmark_interval=1.0)
        self._follower = asyncio.create_task(self._follow(first))

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None
        self._hub.fail_all(Unavailable("store closed"))
        await self.backend.close()

    # -- keeping up with the backend ------------------------------------------------
    async def _load(self) -> None:
        # Page by page, packing as it goes: the raw values of a whole cluster at once would
        # be a large peak (and heap the allocator keeps afterwards).
        items: SortedDict[str, _Item] = SortedDict()
        pack = self._packer.pack
        result = await self.backend.list(self.prefix, limit=LOAD_PAGE)
        revision = result.revision
        while True:
            for kv in result.items:
                items[kv.key] = _Item(pack(kv.key, kv.value), kv.revision, kv.create_revision)
            if not result.continue_token:
                break
            result = await self.backend.list(self.prefix, limit=LOAD_PAGE, continue_token=result.continue_token)
        self._items = items
        self._window.clear()
        self._window_start = revision
        self.revision = revision
        self._hub.advance(revision)

    async def _follow(self, first: Watch) -> None:
        pending: Watch | None = first
        while True:
            try:
                watch = pending or await self.backend.watch(self.prefix, self.revision, bookmark_interval=1.0)
                pending = None
                try:
                    async for event in watch:
                        await self._apply(event)
                finally:
                    watch.close()
            except asyncio.CancelledError:
                raise
            except Compacted as exc:
                if self.revision >= exc.compacted:
                    continue  # nothing missed: watch again from where the cache is
                await self._resync(exc)
            except StoreError as exc:
                # Backend unreachable or restarting: retry from where the cache is.
                log.warning("watch cache lost its stream, retrying: %s", exc)
                await asyncio.sleep(0.5)

    async def _resync(self, cause: Exception) -> None:
        """Changes were compacted away before the cache saw them: reload, and make every
        watcher re-list, as they may have missed changes too."""
        log.warning("watch cache resyncing after: %s", cause)
        self._hub.fail_all(Compacted(self.revision, self.revision + 1))
        while True:
            try:
                await self._load()
                return
            except StoreError as load_error:
                log.warning("watch cache reload failed: %s", load_error)
                await asyncio.sleep(1.0)

    async def _apply(self, event: Event) -> None:
        if event.type != "BOOKMARK":
            key = event.key
            old = self._items.get(key)
            old_raw = self._packer.unpack(old.stored) if old is not None else None
            prev = self._repack(key, event.prev_value, old, old_raw)
            if event.type == "DELETED":
                self._items.pop(key, None)
                value = self._repack(key, event.value, old, old_raw)
            else:
                create = old.create_revision if old and event.type == "MODIFIED" else event.revision
                value = self._packer.pack(key, event.value or b"")
                self._items[key] = _Item(value, event.revision, create)
            if len(self._window) == self._window.maxlen:
                self._window_start = self._window[0].revision
            self._window.append(_Change(event.type, key, event.revision, value, prev))
            self._hub.publish([event])
        else:
            self._hub.advance(event.revision)
        self.revision = max(self.revision, event.revision)
        async with self._progress:
            self._progress.notify_all()

    def _repack(self, key: str, raw: bytes | None, old: _Item | None, old_raw: bytes | None) -> Stored | None:
        """``raw`` packed; the cached item's packed value when it is that value (the usual case)."""
        if raw is None:
            return None
        if old is not None and old_raw == raw:
            return old.stored
        return self._packer.pack(key, raw)

    def _kv(self, key: str, item: _Item) -> KeyValue:
        return KeyValue(key, self._packer.unpack(item.stored), item.revision, item.create_revision)

    def _event(self, change: _Change) -> Event:
        unpack = self._packer.unpack
        return Event(
            change.type,  # type: ignore[arg-type]
            change.key,
            None if change.value is None else unpack(change.value),
            change.revision,
            None if change.prev_value is None else unpack(change.prev_value),
        )

    async def _catch_up(self, target: int | None = None) -> None:
        """Waits until the cache holds every write the backend has acknowledged."""
        if target is None:
            target = await self.backend.current_revision()
        if self.revision >= target:
            return
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT):
                async with self._progress:
                    await self._progress.wait_for(lambda: self.revision >= target)
        except TimeoutError:
            raise Unavailable(f"watch cache did not reach revision {target} in time") from None

    # -- reads ------------------------------------------------------------------------
    async def get(self, key: str) -> KeyValue:
        await self._catch_up()
        item = self._items.get(key)
        if item is None:
            raise NotFound(key)
        return self._kv(key, item)

    async def current_revision(self) -> int:
        return await self.backend.current_revision()

    async def count(self, prefix: str) -> int:
        await self._catch_up()
        return sum(1 for _ in self._items.irange(prefix, prefix_end(prefix), inclusive=(True, False)))

    async def list(
        self, prefix: str, limit: int = 0, continue_token: str | None = None, at_revision: int = 0
    ) -> ListResult:
        start = prefix
        if continue_token:
            at_revision, start = decode_continue(prefix, continue_token)
        if at_revision and at_revision != self.revision:
            return await self.backend.list(prefix, limit, continue_token, at_revision)
        if not at_revision:
            await self._catch_up()
        revision = self.revision
        keys = self._items.irange(start, prefix_end(prefix), inclusive=(True, False))
        items: list[KeyValue] = []
        for key in keys:
            if limit and len(items) == limit:
                remaining = sum(1 for _ in self._items.irange(key, prefix_end(prefix), inclusive=(True, False)))
                return ListResult(items, revision, encode_continue(prefix, revision, key), remaining)
            items.append(self._kv(key, self._items[key]))
        return ListResult(items, revision)

    # -- writes go to the backend -----------------------------------------------------
    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self.backend.create(key, value)

    async def guaranteed_update(
        self,
        key: str,
        try_update: TryUpdate,
        preconditions: Preconditions | None = None,
        ignore_not_found: bool = False,
        cached: KeyValue | None = None,
    ) -> KeyValue:
        if cached is None:
            # As upstream's cacher: the cached copy saves the backend its read; a stale one
            # only costs a retry (the backend checks the revision when it writes).
            item = self._items.get(key)
            cached = self._kv(key, item) if item is not None else None
        return await self.backend.guaranteed_update(key, try_update, preconditions, ignore_not_found, cached)

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> KeyValue:
        return await self.backend.delete(key, preconditions)

    async def compact(self, revision: int) -> None:
        await self.backend.compact(revision)
        await self._catch_up()
        # Honour an explicit compaction in the window too; the backend's own periodic
        # compaction does not shrink it, since the window still holds correct history.
        self._window_start = max(self._window_start, min(revision, self.revision))
        while self._window and self._window[0].revision <= self._window_start:
            self._window.popleft()

    # -- watch ------------------------------------------------------------------------
    async def watch(
        self,
        prefix: str,
        since_revision: int = 0,
        send_initial: bool = False,
        bookmark_interval: float | None = None,
    ) -> HubWatch:
        async def backlog(since: int) -> list[Event]:
            if since < self._window_start:
                raise Compacted(since, self._window_start)
            return [self._event(c) for c in self._window if c.revision > since and c.key.startswith(prefix)]

        async def snapshot(revision: int) -> tuple[list[KeyValue], int]:
            if revision and revision != self.revision:
                result = await self.backend.list(prefix, at_revision=revision)
                return result.items, result.revision
            keys = self._items.irange(prefix, prefix_end(prefix), inclusive=(True, False))
            return [self._kv(k, self._items[k]) for k in keys], self.revision

        if since_revision > self.revision:
            await self._catch_up(since_revision)
        elif send_initial and not since_revision:
            await self._catch_up()
        return await self._hub.open(prefix, since_revision, send_initial, bookmark_interval, backlog, snapshot)

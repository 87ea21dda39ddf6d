"""A watch cache: the same store protocol, served from memory over any backend.

It lists the backend once, then follows one backend watch. Reads of the latest state
come from memory (after making sure the cache has caught up with the backend, so a
client always reads its own writes); watches are fanned out from that single stream
without further backend reads, replaying from a bounded window of recent events.
Older revisions than the window are Compacted; exact-revision reads go to the backend.
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
from .watchhub import HubWatch, WatchHub

log = logging.getLogger(__name__)
CATCH_UP_TIMEOUT = 10.0


class WatchCache:
    def __init__(self, backend: Store, prefix: str = "", window: int = 10_000) -> None:
        self.backend = backend
        self.prefix = prefix
        self._items: SortedDict[str, KeyValue] = SortedDict()
        self._window: deque[Event] = deque(maxlen=window)
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
        items: SortedDict[str, KeyValue] = SortedDict()
        result = await self.backend.list(self.prefix, limit=10_000)
        revision = result.revision
        while True:
            for kv in result.items:
                items[kv.key] = kv
            if not result.continue_token:
                break
            result = await self.backend.list(self.prefix, limit=10_000, continue_token=result.continue_token)
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
            if event.type == "DELETED":
                self._items.pop(event.key, None)
            else:
                old = self._items.get(event.key)
                create = old.create_revision if old and event.type == "MODIFIED" else event.revision
                self._items[event.key] = KeyValue(event.key, event.value or b"", event.revision, create)
            if len(self._window) == self._window.maxlen:
                self._window_start = self._window[0].revision
            self._window.append(event)
            self._hub.publish([event])
        else:
            self._hub.advance(event.revision)
        self.revision = max(self.revision, event.revision)
        async with self._progress:
            self._progress.notify_all()

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
        kv = self._items.get(key)
        if kv is None:
            raise NotFound(key)
        return kv

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
            items.append(self._items[key])
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
    ) -> KeyValue:
        return await self.backend.guaranteed_update(key, try_update, preconditions, ignore_not_found)

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
            return [e for e in self._window if e.revision > since and e.key.startswith(prefix)]

        async def snapshot(revision: int) -> tuple[list[KeyValue], int]:
            if revision and revision != self.revision:
                result = await self.backend.list(prefix, at_revision=revision)
                return result.items, result.revision
            keys = self._items.irange(prefix, prefix_end(prefix), inclusive=(True, False))
            return [self._items[k] for k in keys], self.revision

        if since_revision > self.revision:
            await self._catch_up(since_revision)
        elif send_initial and not since_revision:
            await self._catch_up()
        return await self._hub.open(prefix, since_revision, send_initial, bookmark_interval, backlog, snapshot)

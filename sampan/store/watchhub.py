"""In-process watch fan-out shared by the memory, SQLite and watch-cache stores.

A backend publishes every committed change once, in revision order, from the event
loop; the hub hands it to the watchers whose prefix matches. Watchers are grouped by
prefix, so one change costs one check per distinct prefix, not per watcher.

Opening a watch registers the watcher *before* reading the backlog (history or the
initial list), then drops live events already covered by that read. Nothing falls in
the gap and nothing is delivered twice.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Awaitable, Callable

from .interface import Event, KeyValue, Unavailable

Backlog = Callable[[int], Awaitable[list[Event]]]
"""Returns the events with revision > the argument; raises Compacted if it cannot."""
Snapshot = Callable[[int], Awaitable[tuple[list[KeyValue], int]]]
"""Returns (items, revision) at the given revision (0: latest)."""

MAX_PENDING = 100_000  # a watcher this far behind is dropped; its client re-lists


class HubWatch:
    """One watcher: a queue of events plus optional periodic bookmarks."""

    def __init__(self, hub: WatchHub, prefix: str, bookmark_interval: float | None) -> None:
        self._hub = hub
        self.prefix = prefix
        self._pending: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._after = 0  # live events at or below this revision are already covered
        self._closed = False
        self._error: Exception | None = None
        self._delivered = 0
        self._bookmark_interval = bookmark_interval
        self._bookmark_due = False
        self._timer: asyncio.TimerHandle | None = None

    # -- fed by the hub ---------------------------------------------------------
    def _push(self, event: Event) -> None:
        if event.revision <= self._after or self._closed:
            return
        if len(self._pending) >= MAX_PENDING:
            self._fail(Unavailable("watcher fell too far behind; restart the watch"))
            return
        self._pending.append(event)
        self._wake()

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._unregister()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _start(self, backlog: list[Event], covered_to: int) -> None:
        self._after = covered_to
        live = [e for e in self._pending if e.revision > covered_to]
        self._pending = deque(backlog)
        self._pending.extend(live)
        self._delivered = covered_to
        if self._pending:
            self._wake()
        self._arm_bookmark()

    def _arm_bookmark(self) -> None:
        if self._bookmark_interval and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._bookmark_interval, self._bookmark_tick)

    def _bookmark_tick(self) -> None:
        self._bookmark_due = True
        self._wake()
        self._arm_bookmark()

    # -- consumed by the client -------------------------------------------------
    def __aiter__(self) -> HubWatch:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._pending:
                event = self._pending.popleft()
                self._delivered = max(self._delivered, event.revision)
                return event
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            if self._bookmark_due:
                self._bookmark_due = False
                # Every event up to the hub's revision has been pushed synchronously
                # and the queue is empty, so that revision is safe to resume from.
                revision = max(self._delivered, self._hub.revision)
                return Event("BOOKMARK", "", None, revision)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._unregister()
            self._wake()

    def _unregister(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._hub._remove(self)


class WatchHub:
    def __init__(self) -> None:
        self._by_prefix: dict[str, set[HubWatch]] = {}
        self.revision = 0  # highest revision published

    def publish(self, events: list[Event]) -> None:
        """Deliver committed events (in revision order). Call from the event loop."""
        if not events:
            return
        self.revision = max(self.revision, events[-1].revision)
        if not self._by_prefix:
            return
        for prefix, watchers in list(self._by_prefix.items()):
            for event in events:
                if event.key.startswith(prefix):
                    for watcher in list(watchers):
                        watcher._push(event)

    def advance(self, revision: int) -> None:
        self.revision = max(self.revision, revision)

    def _remove(self, watcher: HubWatch) -> None:
        watchers = self._by_prefix.get(watcher.prefix)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._by_prefix[watcher.prefix]

    def fail_all(self, error: Exception) -> None:
        for watchers in list(self._by_prefix.values()):
            for watcher in list(watchers):
                watcher._fail(error)

    async def open(
        self,
        prefix: str,
        since_revision: int,
        send_initial: bool,
        bookmark_interval: float | None,
        backlog: Backlog,
        snapshot: Snapshot,
    ) -> HubWatch:
        watcher = HubWatch(self, prefix, bookmark_interval)
        self._by_prefix.setdefault(prefix, set()).add(watcher)
        try:
            if send_initial:
                items, revision = await snapshot(since_revision)
                events = [Event("ADDED", kv.key, kv.value, kv.revision) for kv in items]
                events.append(Event("BOOKMARK", "", None, revision, initial_events_end=True))
                watcher._start(events, revision)
            elif since_revision > 0:
                events = await backlog(since_revision)
                watcher._start(events, max([since_revision] + [e.revision for e in events]))
            else:
                watcher._start([], self.revision)
        except BaseException:
            watcher.close()
            raise
        return watcher

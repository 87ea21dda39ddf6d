"""Watches over etcd's bidirectional Watch stream.

Each ``EtcdWatch`` owns one stream (gRPC multiplexes them over the store's channel).
It remembers the highest revision up to which every event has been handed out; that
revision resumes the stream after a dropped connection and is what bookmarks carry.
It only advances on events and on etcd's *periodic* progress notifications, which
travel through the same server-side queue as events and so never overtake them
(etcd 3.4's on-demand progress requests could, so they are not used).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import grpc
from aetcd import rpc

from .interface import Compacted, Event, StoreError, Unavailable

if TYPE_CHECKING:
    from .etcd import EtcdStore

log = logging.getLogger(__name__)

INITIAL_PAGE = 500  # keys per page while replaying the initial state


class EtcdWatch:
    def __init__(self, store: EtcdStore, prefix: str, revision: int, bookmark_interval: float | None) -> None:
        self._store = store
        self._prefix = prefix
        self._revision = revision  # every event <= this has been queued
        self._pending: deque[Event] = deque()
        self._initial_token: str | None = None
        self._initial_end: int | None = None  # revision of the closing bookmark, while replaying
        self._bookmark_interval = bookmark_interval
        self._next_bookmark = 0.0
        self._call: Any = None
        self._read: asyncio.Future[Any] | None = None
        self._closed = False

    # -- setup (called by EtcdStore.watch) --------------------------------------------
    async def _start(self, send_initial: bool) -> None:
        # Open the stream first so no change after ``revision`` can be missed.
        await self._open()
        if send_initial:
            page = await self._store.list(self._prefix, limit=INITIAL_PAGE, at_revision=self._revision)
            self._queue_initial(page.items, page.continue_token)
            self._initial_end = self._revision
            if page.continue_token is None:
                self._finish_initial()
        self._arm_bookmark()

    def _queue_initial(self, items: list[Any], token: str | None) -> None:
        self._pending.extend(Event("ADDED", kv.key, kv.value, kv.revision) for kv in items)
        self._initial_token = token

    def _finish_initial(self) -> None:
        assert self._initial_end is not None
        self._pending.append(Event("BOOKMARK", "", None, self._initial_end, initial_events_end=True))
        self._initial_end = None

    def _arm_bookmark(self) -> None:
        if self._bookmark_interval:
            self._next_bookmark = asyncio.get_running_loop().time() + self._bookmark_interval

    async def _open(self) -> None:
        """(Re)opens the stream for events after ``self._revision``."""
        conn = self._store.conn
        loop = asyncio.get_running_loop()
        deadline = loop.time() + conn.retry_budget
        delay = 0.05
        while True:
            await conn.ready(deadline)
            call = conn.watch_stub.Watch()
            key, end = self._store.range_of(self._prefix)
            create = rpc.WatchCreateRequest(
                key=key,
                range_end=end,
                # 0 lets etcd start at its current revision, so the watcher is in sync
                # from the start; the created response tells us which revision that is.
                start_revision=self._revision + 1 if self._revision else 0,
                prev_kv=True,
                progress_notify=True,
            )
            try:
                await call.write(rpc.WatchRequest(create_request=create))
                resp = await asyncio.wait_for(call.read(), conn.request_timeout)
            except (grpc.aio.AioRpcError, asyncio.TimeoutError) as exc:
                call.cancel()
                if loop.time() + delay >= deadline:
                    raise Unavailable(f"{conn.describe()}: cannot open a watch ({exc})") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if resp is grpc.aio.EOF or not resp.created or resp.canceled:
                call.cancel()
                reason = "stream ended" if resp is grpc.aio.EOF else resp.cancel_reason
                raise StoreError(f"etcd refused the watch on {self._prefix!r}: {reason}")
            self._call = call
            if not self._revision:
                self._revision = int(resp.header.revision)
            return

    # -- iteration ----------------------------------------------------------------------
    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await self._fill()
        return self._pending.popleft()

    async def _fill(self) -> None:
        if self._initial_end is not None:
            page = await self._store.list(self._prefix, limit=INITIAL_PAGE, continue_token=self._initial_token)
            self._queue_initial(page.items, page.continue_token)
            if page.continue_token is None:
                self._finish_initial()
            return
        if self._read is None:
            self._read = asyncio.ensure_future(self._call.read())
        timeout = None
        if self._bookmark_interval:
            timeout = max(0.0, self._next_bookmark - asyncio.get_running_loop().time())
        # asyncio.wait leaves the read pending on timeout; cancelling it would kill the stream.
        done, _ = await asyncio.wait({self._read}, timeout=timeout)
        if not done:
            self._pending.append(Event("BOOKMARK", "", None, self._revision))
            self._arm_bookmark()
            return
        read, self._read = self._read, None
        if self._closed:
            return
        try:
            resp = read.result()
        except grpc.aio.AioRpcError as exc:
            await self._reopen(exc)
            return
        if resp is grpc.aio.EOF:
            await self._reopen("stream ended")
            return
        self._handle(resp)

    def _handle(self, resp: Any) -> None:
        if resp.compact_revision:
            self.close()
            raise Compacted(self._revision, resp.compact_revision)
        if resp.canceled:
            self.close()
            raise StoreError(f"etcd cancelled the watch on {self._prefix!r}: {resp.cancel_reason}")
        if not resp.events:
            if not resp.created:
                # A periodic progress notification: all events up to here were sent.
                self._revision = max(self._revision, resp.header.revision)
            return
        for ev in resp.events:
            if ev.kv.mod_revision <= self._revision:
                continue  # already covered by the start revision or a previous stream
            self._pending.append(self._convert(ev))
            self._revision = max(self._revision, ev.kv.mod_revision)

    def _convert(self, ev: Any) -> Event:
        key = self._store.user_key(ev.kv.key)
        prev = ev.prev_kv.value if ev.HasField("prev_kv") else None
        if ev.type == rpc.Event.DELETE:
            return Event("DELETED", key, prev, ev.kv.mod_revision, prev)
        kind = "ADDED" if ev.kv.create_revision == ev.kv.mod_revision else "MODIFIED"
        return Event(kind, key, ev.kv.value, ev.kv.mod_revision, prev)

    async def _reopen(self, exc: BaseException | str) -> None:
        """Resumes after a dropped stream from the last fully delivered revision."""
        log.info("etcd watch on %r dropped (%s); resuming after revision %d", self._prefix, exc, self._revision)
        if self._call is not None:
            self._call.cancel()
            self._call = None
        try:
            await self._open()
        except StoreError:
            self.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._read is not None:
            self._read.cancel()
            self._read = None
        if self._call is not None:
            self._call.cancel()
            self._call = None
        self._store._forget(self)


async def probe_compacted(store: EtcdStore, requested: int) -> int:
    """The revision etcd is compacted at, learned from a watch below it."""
    conn = store.conn
    call = conn.watch_stub.Watch()
    try:
        create = rpc.WatchCreateRequest(key=b"\0", start_revision=max(requested, 1))
        await call.write(rpc.WatchRequest(create_request=create))
        async with asyncio.timeout(conn.request_timeout):
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    break
                if resp.compact_revision:
                    return int(resp.compact_revision)
                if resp.events or (resp.canceled and not resp.compact_revision):
                    break
    except (grpc.aio.AioRpcError, TimeoutError):
        pass
    finally:
        call.cancel()
    return requested + 1  # best effort: at least above what was asked for

"""The embedded default store: one SQLite file holding an append-only revision log.

Writes go through a single writer thread with group commit (sqlite_writer.py); reads
run on a small pool of reader threads with their own connections, so the event loop
never blocks on disk. Watch events are pushed from the write path, not polled. A
background task compacts old history and gives the space back to the file system.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from .interface import (
    AlreadyExists,
    Compacted,
    Event,
    KeyValue,
    ListResult,
    NotFound,
    Preconditions,
    TryUpdate,
    Unavailable,
    decode_continue,
    encode_continue,
    prefix_end,
    next_value,
)
from .sqlite_writer import SCHEMA, Writer, WriteOp, _Stale, connect, current_row, read_compacted, read_revision
from .watchhub import HubWatch, WatchHub

log = logging.getLogger(__name__)
T = TypeVar("T")


class SQLiteStore:
    def __init__(
        self,
        path: Path | str,
        retain_revisions: int = 1000,
        compact_interval: float = 30.0,
        compact_every_writes: int = 250,
    ) -> None:
        self.path = str(path)
        self.retain_revisions = retain_revisions
        self.compact_interval = compact_interval
        self.compact_every_writes = compact_every_writes
        self._hub = WatchHub()
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqlite-reader")
        self._writer: Writer | None = None
        self._compactor: asyncio.Task | None = None

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._readers, self._open)
        self._writer = Writer(self.path, loop, self._hub.publish)
        self._hub.advance(self._writer.revision)
        self._compactor = asyncio.create_task(self._compact_periodically())

    def _open(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path)
            try:
                # Incremental vacuum only takes effect on a new file, before any table.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise Unavailable(f"cannot use write-ahead logging on {self.path} (got {mode})")
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise Unavailable(f"database file {self.path} is corrupted: {check}")
                conn.executescript(SCHEMA)
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise Unavailable(f"cannot open database {self.path}: {exc}") from exc
        except OSError as exc:
            raise Unavailable(f"cannot open database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
            self._compactor = None
        self._hub.fail_all(Unavailable("store closed"))
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)
            self._writer = None
        self._readers.shutdown(wait=True)

    # -- reads ----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        def run() -> T:
            conn = self._conn()
            try:
                conn.execute("BEGIN")  # one snapshot for every statement of the read
                try:
                    return fn(conn, *args)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise Unavailable(f"sqlite read failed: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def get(self, key: str) -> KeyValue:
        kv = await self._read(current_row, key)
        if kv is None:
            raise NotFound(key)
        return kv

    async def current_revision(self) -> int:
        assert self._writer is not None
        return self._hub.revision

    async def count(self, prefix: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            sql = "SELECT COUNT(*) FROM current WHERE key >= ? AND key < ?"
            return conn.execute(sql, (prefix, prefix_end(prefix))).fetchone()[0]

        return await self._read(run)

    async def list(
        self, prefix: str, limit: int = 0, continue_token: str | None = None, at_revision: int = 0
    ) -> ListResult:
        start = prefix
        if continue_token:
            at_revision, start = decode_continue(prefix, continue_token)
        return await self._read(_list, prefix, start, limit, at_revision)

    # -- writes ---------------------------------------------------------------------
    async def _submit(self, op: WriteOp) -> KeyValue:
        if self._writer is None:
            raise Unavailable("store is not started or already closed")
        return await self._writer.submit(op)

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit(WriteOp("create", key, value))

    async def guaranteed_update(
        self,
        key: str,
        try_update: TryUpdate,
        preconditions: Preconditions | None = None,
        ignore_not_found: bool = False,
        cached: KeyValue | None = None,
    ) -> KeyValue:
        # A cached value saves the read (a trip to a reader thread); the write's revision
        # check catches a stale one, and anything else it made fail is retried on a fresh read.
        trusted = cached is None or preconditions is not None
        current = await self._read(current_row, key) if trusted else cached
        while True:
            try:
                new_value = await next_value(key, current, try_update, preconditions, ignore_not_found)
            except Exception:
                if trusted:
                    raise
                current, trusted = await self._read(current_row, key), True
                continue
            if current is not None and new_value == current.value:
                if not trusted:
                    current, trusted = await self._read(current_row, key), True
                    continue
                return current
            try:
                if current is None:
                    return await self._submit(WriteOp("create", key, new_value))
                return await self._submit(WriteOp("update", key, new_value, current.revision))
            except _Stale as stale:
                current, trusted = stale.current, True
            except (AlreadyExists, NotFound):
                current, trusted = await self._read(current_row, key), True

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> KeyValue:
        current = await self._read(current_row, key)
        while True:
            if current is None:
                raise NotFound(key)
            if preconditions is not None:
                preconditions.verify(current)
            try:
                return await self._submit(WriteOp("delete", key, b"", current.revision))
            except _Stale as stale:
                current = stale.current

    async def compact(self, revision: int) -> None:
        await self._submit(WriteOp("compact", "", str(revision).encode()))

    async def _compact_periodically(self) -> None:
        last_target = 0
        loop = asyncio.get_running_loop()
        last_time = loop.time()
        while True:
            await asyncio.sleep(1.0)
            revision = self._hub.revision
            due_by_time = loop.time() - last_time >= self.compact_interval
            due_by_writes = revision - last_target >= self.compact_every_writes
            target = revision - self.retain_revisions
            if target > last_target and (due_by_time or due_by_writes):
                try:
                    await self.compact(target)
                    last_target, last_time = target, loop.time()
                except Unavailable as exc:
                    log.warning("compaction failed: %s", exc)

    # -- watch ----------------------------------------------------------------------
    async def watch(
        self,
        prefix: str,
        since_revision: int = 0,
        send_initial: bool = False,
        bookmark_interval: float | None = None,
    ) -> HubWatch:
        async def backlog(since: int) -> list[Event]:
            return await self._read(_backlog, prefix, since)

        async def snapshot(revision: int) -> tuple[list[KeyValue], int]:
            result = await self._read(_list, prefix, prefix, 0, revision)
            return result.items, result.revision

        return await self._hub.open(prefix, since_revision, send_initial, bookmark_interval, backlog, snapshot)

    def file_sizes(self) -> dict[str, int]:
        """Bytes on disk of the database and its WAL (for benchmarks and metrics)."""
        sizes = {}
        for suffix in ("", "-wal"):
            try:
                sizes["db" + suffix] = os.path.getsize(self.path + suffix)
            except OSError:
                sizes["db" + suffix] = 0
        return sizes


def _check_compacted(conn: sqlite3.Connection, revision: int) -> None:
    compacted = read_compacted(conn)
    if revision and revision < compacted:
        raise Compacted(revision, compacted)


def _list(conn: sqlite3.Connection, prefix: str, start: str, limit: int, at_revision: int) -> ListResult:
    _check_compacted(conn, at_revision)
    latest = read_revision(conn)
    revision = at_revision or latest
    end = prefix_end(prefix)
    page = limit + 1 if limit else -1
    if revision >= latest:
        rows = conn.execute(
            "SELECT c.key, c.revision, l.create_revision, l.value FROM current c "
            "JOIN log l ON l.revision = c.revision WHERE c.key >= ? AND c.key < ? "
            "ORDER BY c.key LIMIT ?",
            (start, end, page),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT l.key, l.revision, l.create_revision, l.value FROM log l JOIN ("
            " SELECT key, MAX(revision) AS revision FROM log"
            " WHERE key >= ? AND key < ? AND revision <= ? GROUP BY key"
            ") m ON l.revision = m.revision WHERE l.deleted = 0 ORDER BY l.key LIMIT ?",
            (start, end, revision, page),
        ).fetchall()
    items = [KeyValue(r[0], r[3], r[1], r[2]) for r in rows]
    if not limit or len(items) <= limit:
        return ListResult(items, revision)
    next_key = items[limit].key
    remaining = None
    if revision >= latest:
        remaining = conn.execute(
            "SELECT COUNT(*) FROM current WHERE key >= ? AND key < ?", (next_key, end)
        ).fetchone()[0]
    return ListResult(items[:limit], revision, encode_continue(prefix, revision, next_key), remaining)


def _backlog(conn: sqlite3.Connection, prefix: str, since: int) -> list[Event]:
    _check_compacted(conn, since)
    rows = conn.execute(
        "SELECT l.revision, l.key, l.created, l.deleted, l.value, p.value FROM log l "
        "LEFT JOIN log p ON p.revision = l.prev_revision AND l.prev_revision > 0 "
        "WHERE l.revision > ? AND l.key >= ? AND l.key < ? ORDER BY l.revision",
        (since, prefix, prefix_end(prefix)),
    ).fetchall()
    events = []
    for revision, key, created, deleted, value, prev in rows:
        kind = "DELETED" if deleted else ("ADDED" if created else "MODIFIED")
        events.append(Event(kind, key, value, revision, prev if not deleted else value))
    return events

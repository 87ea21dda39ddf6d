"""The single writer thread of the SQLite store.

All writes go through one thread and one connection. It takes every operation that is
waiting, applies them in one transaction and commits once (group commit), so one
fsync covers many writers. Results and watch events go back to the event loop in one
callback per batch, only after the commit is durable.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from dataclasses import dataclass
from typing import Callable

from .interface import AlreadyExists, Conflict, Event, KeyValue, NotFound, StoreError, Unavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT    NOT NULL,
    created         INTEGER NOT NULL,  -- 1: this row creates the key
    deleted         INTEGER NOT NULL,  -- 1: this row deletes it (value = last value)
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,  -- the key's previous row, 0 if none
    value           BLOB    NOT NULL
);
-- Racing writers of one key cannot both build on the same previous row. The index
-- also carries the rowid (= revision), so it serves per-key revision lookups too.
CREATE UNIQUE INDEX IF NOT EXISTS log_key_prev ON log (key, prev_revision);
-- The latest live revision of each key: makes "list latest" an index range scan.
CREATE TABLE IF NOT EXISTS current (key TEXT PRIMARY KEY, revision INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

MAX_BATCH = 512


@dataclass(slots=True)
class WriteOp:
    kind: str  # "create" | "update" | "delete" | "compact"
    key: str
    value: bytes = b""
    expected_revision: int = 0  # update/delete: the revision the caller read
    future: asyncio.Future | None = None


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    # After each checkpoint cut the WAL back to this size, so it cannot stay large.
    conn.execute(f"PRAGMA journal_size_limit = {1024 * 1024}")
    return conn


def current_row(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(
        "SELECT c.revision, l.create_revision, l.value FROM current c "
        "JOIN log l ON l.revision = c.revision WHERE c.key = ?",
        (key,),
    ).fetchone()
    return KeyValue(key, row[2], row[0], row[1]) if row else None


def read_revision(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
    return row[0] if row else 0


def read_compacted(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()
    return row[0] if row else 0


class Writer:
    def __init__(
        self,
        path: str,
        loop: asyncio.AbstractEventLoop,
        publish: Callable[[list[Event]], None],
    ) -> None:
        self._conn = connect(path)
        self._conn.execute("PRAGMA synchronous = FULL")  # acknowledged means on disk
        self._loop = loop
        self._publish = publish
        self._queue: queue.SimpleQueue[WriteOp | None] = queue.SimpleQueue()
        self.revision = read_revision(self._conn)
        self.compacted = read_compacted(self._conn)
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, op: WriteOp) -> asyncio.Future:
        op.future = self._loop.create_future()
        self._queue.put(op)
        return op.future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._conn.close()

    # -- the thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            batch = [op]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._commit_batch(batch)
            if stop:
                return

    def _commit_batch(self, batch: list[WriteOp]) -> None:
        results: list[object] = []
        events: list[Event] = []
        start_revision, start_compacted = self.revision, self.compacted
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                try:
                    results.append(self._apply(op, events))
                except StoreError as exc:
                    results.append(exc)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self.revision, self.compacted = start_revision, start_compacted
            error = Unavailable(f"sqlite write failed: {exc}")
            results = [error] * len(batch)
            events = []
        self._loop.call_soon_threadsafe(self._deliver, batch, results, events)
        if any(op.kind == "compact" for op in batch):
            self._reclaim_space()

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _deliver(self, batch: list[WriteOp], results: list[object], events: list[Event]) -> None:
        # Publish first: a writer that awaits its result then watches must not miss it.
        self._publish(events)
        for op, result in zip(batch, results):
            if op.future is None or op.future.done():
                continue
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)

    def _insert(self, key: str, created: int, deleted: int, create_rev: int, prev_rev: int, value: bytes) -> int:
        revision = self.revision + 1
        self._conn.execute(
            "INSERT INTO log (revision, key, created, deleted, create_revision, prev_revision, value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (revision, key, created, deleted, create_rev or revision, prev_rev, value),
        )
        self.revision = revision
        return revision

    def _apply(self, op: WriteOp, events: list[Event]) -> object:
        conn = self._conn
        if op.kind == "compact":
            return self._compact(int(op.value))
        current = current_row(conn, op.key)
        if op.kind == "create":
            if current is not None:
                raise AlreadyExists(op.key)
            last = conn.execute("SELECT MAX(revision) FROM log WHERE key = ?", (op.key,)).fetchone()[0]
            revision = self._insert(op.key, 1, 0, 0, last or 0, op.value)
            conn.execute("INSERT INTO current (key, revision) VALUES (?, ?)", (op.key, revision))
            events.append(Event("ADDED", op.key, op.value, revision))
            return KeyValue(op.key, op.value, revision, revision)
        if current is None:
            raise NotFound(op.key)
        if op.expected_revision and current.revision != op.expected_revision:
            raise _Stale(current)
        if op.kind == "update":
            revision = self._insert(op.key, 0, 0, current.create_revision, current.revision, op.value)
            conn.execute("UPDATE current SET revision = ? WHERE key = ?", (revision, op.key))
            events.append(Event("MODIFIED", op.key, op.value, revision, current.value))
            return KeyValue(op.key, op.value, revision, current.create_revision)
        revision = self._insert(op.key, 0, 1, current.create_revision, current.revision, current.value)
        conn.execute("DELETE FROM current WHERE key = ?", (op.key,))
        events.append(Event("DELETED", op.key, current.value, revision, current.value))
        return KeyValue(op.key, current.value, revision, current.create_revision)

    def _compact(self, revision: int) -> int:
        """Drops history at or below ``revision`` that no read at or after it needs:
        rows superseded by a later row at or below it, and deletion rows."""
        revision = min(revision, self.revision)
        if revision <= self.compacted:
            return self.compacted
        self._conn.execute(
            "DELETE FROM log WHERE revision <= :r AND ("
            " (revision > :old AND deleted = 1)"
            " OR revision IN (SELECT prev_revision FROM log WHERE revision > :old AND revision <= :r))",
            {"r": revision, "old": self.compacted},
        )
        self._conn.execute(
            "INSERT INTO meta (name, value) VALUES ('compacted', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (revision,),
        )
        self.compacted = revision
        return revision

    def _reclaim_space(self) -> None:
        """After a compaction: return freed pages to the file system, then fold the WAL
        back into the file and truncate it, so disk use follows live data."""
        try:
            self._conn.executescript("PRAGMA incremental_vacuum;")  # execute() would free one page
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # best effort: the next compaction tries again


class _Stale(Conflict):
    """The key moved on since the caller read it; carries the fresh value for a retry."""

    def __init__(self, current: KeyValue) -> None:
        super().__init__(current.key, f"stale revision for {current.key}")
        self.current = current

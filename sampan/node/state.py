"""The agent's own record of what it was told to run: assigned pods and the ConfigMaps and
Secrets they use, in DATA/agent/state.db. With the server out of reach, the agent keeps
running (and restarting) pods from this file alone.

sqlite3 calls are short and run in a worker thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pods (uid TEXT PRIMARY KEY, namespace TEXT, name TEXT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (kind TEXT, namespace TEXT, name TEXT, body TEXT NOT NULL,
                                    PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class AgentState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # one connection, used from several worker threads

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def _call(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._run, sql, args)

    # -- pods ----------------------------------------------------------------------------
    async def put_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        await self._call(
            "INSERT OR REPLACE INTO pods (uid, namespace, name, body) VALUES (?, ?, ?, ?)",
            (meta["uid"], meta.get("namespace", ""), meta["name"], json.dumps(pod)),
        )

    async def delete_pod(self, uid: str) -> None:
        await self._call("DELETE FROM pods WHERE uid = ?", (uid,))

    async def pods(self) -> list[Obj]:
        return [json.loads(body) for (body,) in await self._call("SELECT body FROM pods")]

    # -- configmaps and secrets ----------------------------------------------------------
    async def put_object(self, kind: str, namespace: str, name: str, obj: Obj | None) -> None:
        if obj is None:
            await self._call("DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                             (kind, namespace, name))
            return
        await self._call("INSERT OR REPLACE INTO objects (kind, namespace, name, body) VALUES (?, ?, ?, ?)",
                         (kind, namespace, name, json.dumps(obj)))

    async def get_object(self, kind: str, namespace: str, name: str) -> Obj | None:
        rows = await self._call("SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                                (kind, namespace, name))
        return json.loads(rows[0][0]) if rows else None

    # -- small settings (node uid, pod CIDR) ---------------------------------------------
    async def set(self, key: str, value: str) -> None:
        await self._call("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    async def get(self, key: str) -> str | None:
        rows = await self._call("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""Sampan's store: a small protocol over keys and revisions, and its backends."""

from __future__ import annotations

from pathlib import Path

from .interface import (
    AlreadyExists,
    Compacted,
    Conflict,
    Event,
    InvalidContinue,
    KeyValue,
    ListResult,
    NotFound,
    Preconditions,
    Store,
    StoreError,
    Unavailable,
)

__all__ = [
    "AlreadyExists", "Compacted", "Conflict", "Event", "InvalidContinue", "KeyValue", "ListResult",
    "NotFound", "Preconditions", "Store", "StoreError", "Unavailable", "open_backend", "open_store",
]


async def open_backend(datastore: str, data_dir: Path) -> Store:
    """The raw backend named by ``--datastore``: sqlite, memory or etcd://h:p[,h:p]."""
    if datastore == "sqlite":
        from .sqlite import SQLiteStore

        store: Store = SQLiteStore(Path(data_dir) / "server" / "db" / "state.db")
    elif datastore == "memory":
        from .memory import MemoryStore

        store = MemoryStore()
    elif datastore.startswith("etcd://"):
        from .etcd import EtcdStore

        endpoints = [e for e in datastore[len("etcd://") :].split(",") if e]
        store = EtcdStore(endpoints)
    else:
        raise ValueError(f"unknown datastore {datastore!r}: use sqlite, memory or etcd://host:port[,host:port]")
    await store.start()  # type: ignore[attr-defined]
    return store


async def open_store(datastore: str, data_dir: Path) -> Store:
    """The backend behind a watch cache: what the API server uses."""
    from .watchcache import WatchCache

    cache = WatchCache(await open_backend(datastore, data_dir))
    await cache.start()
    return cache

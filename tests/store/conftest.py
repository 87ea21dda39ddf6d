"""The ``store`` fixture: every backend, raw and behind the watch cache."""

from __future__ import annotations

import uuid

import pytest

from sampan.store.memory import MemoryStore
from sampan.store.sqlite import SQLiteStore
from sampan.store.watchcache import WatchCache

from .etcd_server import etcd_server  # noqa: F401  (fixture)

BACKENDS = ["memory", "sqlite", "etcd", "cache-memory", "cache-sqlite", "cache-etcd"]


async def _backend(kind: str, tmp_path, request):
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "state.db")
    from sampan.store.etcd import EtcdStore

    return EtcdStore([request.getfixturevalue("etcd_server").endpoint])


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    kind = request.param
    backend = await _backend(kind.removeprefix("cache-"), tmp_path, request)
    await backend.start()
    store = backend
    if kind.startswith("cache-"):
        store = WatchCache(backend)
        await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def prefix() -> str:
    return f"/registry/test-{uuid.uuid4().hex[:8]}/"

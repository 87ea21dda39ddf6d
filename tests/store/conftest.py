"""The ``store`` fixture: every backend, raw and behind the watch cache."""

from __future__ import annotations

import uuid

import pytest

from sampan.store.memory import MemoryStore
from sampan.store.sqlite import SQLiteStore
from sampan.store.watchcache import WatchCache

BACKENDS = ["memory", "sqlite", "etcd", "cache-memory", "cache-sqlite", "cache-etcd"]


@pytest.fixture(scope="module")
async def etcd_endpoint(tmp_path_factory):
    from .etcd_server import start_etcd

    server = await start_etcd(tmp_path_factory.mktemp("etcd"))
    try:
        yield server.endpoint
    finally:
        await server.stop() if _is_coroutine_fn(server.stop) else server.stop()


def _is_coroutine_fn(fn) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


async def _backend(kind: str, tmp_path, request):
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "state.db")
    from sampan.store.etcd import EtcdStore

    return EtcdStore([request.getfixturevalue("etcd_endpoint")])


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

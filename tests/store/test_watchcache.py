"""Watch cache specifics the shared conformance suite does not reach."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from sampan.store.interface import Event
import pytest

from sampan.store.sqlite import SQLiteStore
from sampan.store.watchcache import LOAD_PAGE, WatchCache
from tests.store.conftest import _backend


@pytest.mark.parametrize("kind", ["sqlite", "memory", "etcd"])
async def test_restarts_over_a_store_with_more_keys_than_a_page(kind: str, tmp_path: Path, request: Any) -> None:
    """A restored cluster has far more objects than one page: the cache must load them all."""
    backend = await _backend(kind, tmp_path, request)
    await backend.start()
    count = LOAD_PAGE * 2 + 50
    for start in range(0, count, 1000):
        for i in range(start, min(count, start + 1000)):
            await backend.create(f"/registry/core/pods/ns/p{i:05d}", b'{"i":%d}' % i)
    cache = WatchCache(backend)
    await cache.start()
    try:
        assert await cache.count("/registry/core/pods/") == count
        page = await cache.list("/registry/core/pods/ns/", limit=500)
        assert len(page.items) == 500 and page.continue_token
        kv = await cache.get(f"/registry/core/pods/ns/p{count - 1:05d}")
        assert kv.value == b'{"i":%d}' % (count - 1)
    finally:
        await cache.close()


def _pod(name: str, node: str, ip: str) -> bytes:
    """A value shaped like a stored pod: large and much like its siblings."""
    return orjson.dumps({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web", "pod-template-hash": "5d8f7c6b9"},
                     "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                        "fieldsV1": {"f:spec": {f"f:field{i}": {} for i in range(20)}}}]},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9",
                                                   "terminationMessagePath": "/dev/termination-log"}]},
        "status": {"phase": "Running", "podIP": ip},
    })


async def _next(watch: Any) -> Event:
    return await asyncio.wait_for(watch.__anext__(), 5.0)


async def test_large_values_round_trip_through_reads_watches_and_backlog(tmp_path: Path) -> None:
    backend = SQLiteStore(tmp_path / "state.db")
    await backend.start()
    for i in range(5):
        await backend.create(f"/registry/core/pods/ns/p{i}", _pod(f"p{i}", "n0", f"10.0.0.{i}"))
    cache = WatchCache(backend)
    await cache.start()
    try:
        start = await cache.current_revision()
        live = await cache.watch("/registry/core/pods/", since_revision=start)
        first = await cache.create("/registry/core/pods/ns/new", _pod("new", "n1", "10.0.1.1"))
        updated = await cache.guaranteed_update("/registry/core/pods/ns/p1", lambda _kv: _pod("p1", "n2", "10.0.2.1"))
        await cache.delete("/registry/core/pods/ns/p2")
        seen = [await _next(live) for _ in range(3)]
        live.close()
        assert [e.type for e in seen] == ["ADDED", "MODIFIED", "DELETED"]

        assert (await cache.get("/registry/core/pods/ns/p1")).value == _pod("p1", "n2", "10.0.2.1")
        listed = await cache.list("/registry/core/pods/ns/")
        assert {kv.key.rsplit("/", 1)[1]: kv.value for kv in listed.items} == {
            "p0": _pod("p0", "n0", "10.0.0.0"), "p1": _pod("p1", "n2", "10.0.2.1"),
            "p3": _pod("p3", "n0", "10.0.0.3"), "p4": _pod("p4", "n0", "10.0.0.4"),
            "new": _pod("new", "n1", "10.0.1.1")}
        # A watch resuming from before the changes replays them from the packed window.
        replay = await cache.watch("/registry/core/pods/", since_revision=start)
        again = [await _next(replay) for _ in range(3)]
        replay.close()
        assert [(e.type, e.key, e.revision) for e in again] == [(e.type, e.key, e.revision) for e in seen]
        assert again[0].value == _pod("new", "n1", "10.0.1.1") and again[0].revision == first.revision
        assert again[1].value == _pod("p1", "n2", "10.0.2.1") and again[1].revision == updated.revision
        assert again[1].prev_value == _pod("p1", "n0", "10.0.0.1")
        assert again[2].value == _pod("p2", "n0", "10.0.0.2") or again[2].prev_value == _pod("p2", "n0", "10.0.0.2")
        for live_event, replayed in zip(seen, again):
            assert (live_event.value, live_event.prev_value) == (replayed.value, replayed.prev_value)
    finally:
        await cache.close()

"""guaranteed_update started from a cached copy (upstream's cachedExistingObject): the
read is saved, and a stale copy never loses a write or invents an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sampan.store.interface import KeyValue, NotFound
from sampan.store.sqlite import SQLiteStore
from sampan.store.watchcache import WatchCache

KEY = "/registry/core/configmaps/ns/c"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "state.db")
    await s.start()
    yield s
    await s.close()


def append(suffix: bytes):  # type: ignore[no-untyped-def]
    def update(current: KeyValue | None) -> bytes:
        assert current is not None
        return current.value + suffix

    return update


def count_reads(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the name of every read the store makes on its reader threads from now on."""
    reads: list[str] = []
    real = store._read

    async def counting(fn, *args):  # type: ignore[no-untyped-def]
        reads.append(fn.__name__)
        return await real(fn, *args)

    monkeypatch.setattr(store, "_read", counting)
    return reads


async def test_a_stale_copy_costs_a_retry_not_a_lost_write(store: SQLiteStore) -> None:
    stale = await store.create(KEY, b"a")
    await store.guaranteed_update(KEY, append(b"b"))
    seen: list[bytes] = []

    def update(current: KeyValue | None) -> bytes:
        assert current is not None
        seen.append(current.value)
        return current.value + b"c"

    result = await store.guaranteed_update(KEY, update, cached=stale)
    assert seen == [b"a", b"ab"]  # tried on the copy, then on what the store holds
    assert result.value == b"abc" and (await store.get(KEY)).value == b"abc"


async def test_a_current_copy_saves_the_read(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    current = await store.create(KEY, b"a")
    reads = count_reads(store, monkeypatch)
    result = await store.guaranteed_update(KEY, append(b"b"), cached=current)
    assert result.value == b"ab" and reads == []
    await store.guaranteed_update(KEY, append(b"c"))
    assert reads == ["current_row"]


async def test_an_error_on_a_stale_copy_is_checked_on_the_live_value(store: SQLiteStore) -> None:
    stale = await store.create(KEY, b"old")
    await store.guaranteed_update(KEY, lambda _: b"new")

    def needs_new(current: KeyValue | None) -> bytes:
        assert current is not None
        if current.value != b"new":
            raise ValueError("conflict on an old value")
        return b"newer"

    assert (await store.guaranteed_update(KEY, needs_new, cached=stale)).value == b"newer"
    # A real error still reaches the caller.
    with pytest.raises(ValueError):
        await store.guaranteed_update(KEY, lambda _: (_ for _ in ()).throw(ValueError("no")), cached=stale)


async def test_a_copy_of_a_deleted_key_is_not_found(store: SQLiteStore) -> None:
    stale = await store.create(KEY, b"a")
    await store.delete(KEY)
    with pytest.raises(NotFound):
        await store.guaranteed_update(KEY, append(b"b"), cached=stale)
    assert (await store.guaranteed_update(KEY, lambda _: b"c", ignore_not_found=True, cached=stale)).value == b"c"


async def test_a_no_op_on_a_stale_copy_returns_the_live_value(store: SQLiteStore) -> None:
    stale = await store.create(KEY, b"a")
    await store.guaranteed_update(KEY, lambda _: b"b")
    result = await store.guaranteed_update(KEY, lambda _: b"b", cached=stale)
    assert result.value == b"b" and result.revision > stale.revision


async def test_the_watch_cache_starts_updates_from_its_copy(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = WatchCache(store)
    await cache.start()
    try:
        await cache.create(KEY, b"a")
        await cache.get(KEY)  # caught up: the cache holds the key
        reads = count_reads(store, monkeypatch)
        result = await cache.guaranteed_update(KEY, append(b"b"))
        assert result.value == b"ab" and reads == []
        # Two quick updates: the second may start from a copy the cache has not refreshed yet.
        await cache.guaranteed_update(KEY, append(b"c"))
        assert (await store.get(KEY)).value == b"abc"
    finally:
        await cache.close()

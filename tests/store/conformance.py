"""The backend-agnostic store suite. Every backend (and the watch cache over each) must
pass it; ``test_conformance.py`` runs it against all of them through the ``store``
fixture. Each test works under its own key prefix so backends can be shared."""

from __future__ import annotations

import asyncio
import random

import pytest

from sampan.store import AlreadyExists, Compacted, Conflict, InvalidContinue, NotFound, Preconditions
from sampan.store.interface import Event, KeyValue, Watch


async def take(watch: Watch, count: int, timeout: float = 10.0, bookmarks: bool = False) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        async for event in watch:
            if event.type == "BOOKMARK" and not bookmarks:
                continue
            events.append(event)
            if len(events) == count:
                break
    return events


async def assert_quiet(watch: Watch, seconds: float = 0.3) -> None:
    """No non-bookmark event arrives for a while."""
    try:
        async with asyncio.timeout(seconds):
            async for event in watch:
                if event.type != "BOOKMARK":
                    raise AssertionError(f"unexpected event {event}")
    except TimeoutError:
        pass


async def test_create_get(store, prefix):
    kv = await store.create(prefix + "a", b"one")
    assert kv.value == b"one" and kv.revision > 0 and kv.create_revision == kv.revision
    got = await store.get(prefix + "a")
    assert got == KeyValue(prefix + "a", b"one", kv.revision, kv.revision)
    with pytest.raises(AlreadyExists):
        await store.create(prefix + "a", b"two")
    with pytest.raises(NotFound):
        await store.get(prefix + "missing")
    assert (await store.get(prefix + "a")).value == b"one"


async def test_revisions_grow(store, prefix):
    first = await store.create(prefix + "a", b"1")
    second = await store.create(prefix + "b", b"2")
    assert second.revision > first.revision
    assert await store.current_revision() >= second.revision


async def test_list_order_pagination_and_snapshot(store, prefix):
    names = [f"k{i:02d}" for i in range(25)]
    random.Random(7).shuffle(names)
    for name in names:
        await store.create(prefix + name, name.encode())
    await store.create(prefix[:-1] + "x/outside", b"no")  # shares the prefix's stem only

    full = await store.list(prefix)
    assert [kv.key for kv in full.items] == [prefix + f"k{i:02d}" for i in range(25)]
    assert full.continue_token is None

    page = await store.list(prefix, limit=10)
    assert [kv.key for kv in page.items] == [prefix + f"k{i:02d}" for i in range(10)]
    assert page.continue_token and page.remaining == 15
    # Writes after the first page must not show up in later pages (pinned revision).
    await store.create(prefix + "k15a", b"late")
    await store.guaranteed_update(prefix + "k20", lambda kv: b"changed")
    seen = [kv.key for kv in page.items]
    values = {}
    token = page.continue_token
    while token:
        page = await store.list(prefix, limit=10, continue_token=token)
        assert page.revision == full.revision or page.revision < full.revision + 3
        seen += [kv.key for kv in page.items]
        values.update({kv.key: kv.value for kv in page.items})
        token = page.continue_token
    assert seen == [prefix + f"k{i:02d}" for i in range(25)]
    assert values[prefix + "k20"] == b"k20"
    assert await store.count(prefix) == 26


async def test_list_at_revision(store, prefix):
    created = await store.create(prefix + "a", b"old")
    await store.guaranteed_update(prefix + "a", lambda kv: b"new")
    await store.create(prefix + "b", b"later")
    then = await store.list(prefix, at_revision=created.revision)
    assert [(kv.key, kv.value) for kv in then.items] == [(prefix + "a", b"old")]
    assert then.revision == created.revision
    now = await store.list(prefix)
    assert [kv.value for kv in now.items] == [b"new", b"later"]


async def test_invalid_continue(store, prefix):
    with pytest.raises(InvalidContinue):
        await store.list(prefix, limit=1, continue_token="not-a-token!")


async def test_guaranteed_update(store, prefix):
    key = prefix + "a"
    with pytest.raises(NotFound):
        await store.guaranteed_update(key, lambda kv: b"x")
    created = await store.guaranteed_update(key, lambda kv: b"made" if kv is None else b"bad", ignore_not_found=True)
    assert created.value == b"made" and created.create_revision == created.revision
    updated = await store.guaranteed_update(key, lambda kv: kv.value + b"!")
    assert updated.value == b"made!" and updated.revision > created.revision
    assert updated.create_revision == created.revision
    same = await store.guaranteed_update(key, lambda kv: kv.value)
    assert same.revision == updated.revision  # nothing written


async def test_guaranteed_update_async_callback(store, prefix):
    await store.create(prefix + "a", b"1")

    async def double(kv):
        await asyncio.sleep(0)
        return kv.value * 2

    assert (await store.guaranteed_update(prefix + "a", double)).value == b"11"


async def test_guaranteed_update_contention_loses_nothing(store, prefix):
    key = prefix + "counter"
    await store.create(key, b"0")

    async def increment(kv):
        await asyncio.sleep(0)  # let the other writers interleave
        return str(int(kv.value) + 1).encode()

    async def worker():
        for _ in range(20):
            await store.guaranteed_update(key, increment)

    await asyncio.gather(*(worker() for _ in range(16)))
    assert (await store.get(key)).value == b"320"


async def test_update_error_aborts(store, prefix):
    kv = await store.create(prefix + "a", b"1")

    def refuse(current):
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.guaranteed_update(prefix + "a", refuse)
    assert await store.get(prefix + "a") == kv


async def test_preconditions(store, prefix):
    kv = await store.create(prefix + "a", b"1")
    with pytest.raises(Conflict):
        await store.guaranteed_update(prefix + "a", lambda c: b"2", Preconditions(revision=kv.revision + 100))
    ok = await store.guaranteed_update(prefix + "a", lambda c: b"2", Preconditions(revision=kv.revision))
    assert ok.value == b"2"

    def wrong_owner(current):
        raise Conflict(current.key, "uid mismatch")

    with pytest.raises(Conflict, match="uid mismatch"):
        await store.delete(prefix + "a", Preconditions(check=wrong_owner))
    with pytest.raises(Conflict):
        await store.delete(prefix + "a", Preconditions(revision=kv.revision))
    assert (await store.get(prefix + "a")).value == b"2"
    await store.delete(prefix + "a", Preconditions(revision=ok.revision))
    with pytest.raises(NotFound):
        await store.get(prefix + "a")


async def test_delete(store, prefix):
    kv = await store.create(prefix + "a", b"last")
    deleted = await store.delete(prefix + "a")
    assert deleted.value == b"last" and deleted.revision > kv.revision
    with pytest.raises(NotFound):
        await store.get(prefix + "a")
    with pytest.raises(NotFound):
        await store.delete(prefix + "a")
    again = await store.create(prefix + "a", b"again")
    assert again.create_revision > deleted.revision
    assert [k.key for k in (await store.list(prefix)).items] == [prefix + "a"]


async def test_concurrent_creates_one_wins(store, prefix):
    results = await asyncio.gather(*(store.create(prefix + "x", str(i).encode()) for i in range(8)),
                                   return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, KeyValue)) == 1
    assert all(isinstance(r, (KeyValue, AlreadyExists)) for r in results)


async def test_watch_from_revision_in_order(store, prefix):
    start = await store.create(prefix + "a", b"a1")
    await store.create(prefix + "b", b"b1")
    await store.guaranteed_update(prefix + "a", lambda kv: b"a2")
    await store.delete(prefix + "b")
    await store.create(prefix + "b", b"b2")
    watch = await store.watch(prefix, since_revision=start.revision)
    try:
        events = await take(watch, 4)
        assert [(e.type, e.key[len(prefix):], e.value) for e in events] == [
            ("ADDED", "b", b"b1"), ("MODIFIED", "a", b"a2"), ("DELETED", "b", b"b1"), ("ADDED", "b", b"b2"),
        ]
        revisions = [e.revision for e in events]
        assert revisions == sorted(revisions) and revisions[0] > start.revision
        live = await store.guaranteed_update(prefix + "a", lambda kv: b"a3")
        (event,) = await take(watch, 1)
        assert (event.type, event.value, event.revision) == ("MODIFIED", b"a3", live.revision)
        assert event.prev_value in (None, b"a2")
    finally:
        watch.close()


async def test_watch_from_every_revision(store, prefix):
    revisions = []
    for i in range(6):
        revisions.append((await store.create(prefix + f"k{i}", b"v")).revision)
    for i, revision in enumerate(revisions):
        watch = await store.watch(prefix, since_revision=revision)
        try:
            expected = [prefix + f"k{j}" for j in range(i + 1, 6)]
            events = await take(watch, len(expected)) if expected else []
            assert [e.key for e in events] == expected
        finally:
            watch.close()


async def test_watch_from_now_and_prefix_isolation(store, prefix):
    await store.create(prefix + "before", b"x")
    watch = await store.watch(prefix + "in/")
    try:
        await store.create(prefix + "out/x", b"no")
        await store.create(prefix + "in/x", b"yes")
        (event,) = await take(watch, 1)
        assert (event.type, event.key) == ("ADDED", prefix + "in/x")
        await assert_quiet(watch)
    finally:
        watch.close()


async def test_watch_send_initial(store, prefix):
    await store.create(prefix + "a", b"1")
    await store.create(prefix + "b", b"2")
    watch = await store.watch(prefix, send_initial=True)
    try:
        events = await take(watch, 3, bookmarks=True)
        assert [(e.type, e.key) for e in events[:2]] == [("ADDED", prefix + "a"), ("ADDED", prefix + "b")]
        assert events[2].type == "BOOKMARK" and events[2].initial_events_end
        assert events[2].revision >= max(e.revision for e in events[:2])
        await store.delete(prefix + "a")
        (event,) = await take(watch, 1)
        assert (event.type, event.key, event.value) == ("DELETED", prefix + "a", b"1")
    finally:
        watch.close()


async def test_many_watchers_see_the_same_stream(store, prefix):
    watches = [await store.watch(prefix) for _ in range(50)]
    try:
        for i in range(5):
            await store.create(prefix + f"k{i}", b"v")
        streams = await asyncio.gather(*(take(w, 5) for w in watches))
        keys = [[e.key for e in s] for s in streams]
        assert all(k == [prefix + f"k{i}" for i in range(5)] for k in keys)
    finally:
        for watch in watches:
            watch.close()


async def test_bookmarks(store, prefix):
    watch = await store.watch(prefix, bookmark_interval=0.2)
    try:
        written = await store.create(prefix + "a", b"1")
        events = await take(watch, 2, bookmarks=True)
        assert events[0].type == "ADDED"
        assert events[1].type == "BOOKMARK" and events[1].revision >= written.revision
    finally:
        watch.close()


async def test_compaction(store, prefix):
    first = await store.create(prefix + "a", b"1")
    for i in range(2, 6):
        await store.guaranteed_update(prefix + "a", lambda kv, i=i: str(i).encode())
    middle = await store.create(prefix + "b", b"b")
    await store.guaranteed_update(prefix + "a", lambda kv: b"last")
    await store.compact(middle.revision)

    with pytest.raises(Compacted):
        await store.list(prefix, at_revision=first.revision)
    with pytest.raises(Compacted):
        watch = await store.watch(prefix, since_revision=first.revision)
        try:
            await take(watch, 1)
        finally:
            watch.close()
    snapshot = await store.list(prefix, at_revision=middle.revision)
    assert [(kv.key, kv.value) for kv in snapshot.items] == [(prefix + "a", b"5"), (prefix + "b", b"b")]
    latest = await store.list(prefix)
    assert [kv.value for kv in latest.items] == [b"last", b"b"]
    watch = await store.watch(prefix, since_revision=middle.revision)
    try:
        (event,) = await take(watch, 1)
        assert (event.type, event.value) == ("MODIFIED", b"last")
    finally:
        watch.close()


async def test_read_own_first_write(store, prefix):
    """The very first write after start is visible at once (no gap while a cache subscribes)."""
    kv = await store.create(prefix + "first", b"1")
    assert (await store.get(prefix + "first")) == kv

"""EtcdStore against a real etcd: behaviour specific to this backend plus the basics."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid
from typing import AsyncIterator

import pytest

from sampan.store import etcd_watch
from sampan.store.etcd import EtcdStore
from sampan.store.interface import (
    AlreadyExists,
    Compacted,
    Conflict,
    Event,
    KeyValue,
    NotFound,
    Preconditions,
    Unavailable,
)

from .etcd_server import EtcdProcess, etcd_server, start_etcd  # noqa: F401  (fixture)


@pytest.fixture
async def store(etcd_server: EtcdProcess) -> AsyncIterator[EtcdStore]:  # noqa: F811
    # Each test gets its own key namespace inside the shared etcd.
    s = EtcdStore([etcd_server.endpoint], prefix=f"/test-{uuid.uuid4().hex[:8]}")
    await s.start()
    yield s
    await s.close()


async def next_event(watch, timeout: float = 5.0) -> Event:
    return await asyncio.wait_for(watch.__anext__(), timeout)


async def test_create_get(store: EtcdStore) -> None:
    kv = await store.create("/pods/a", b"one")
    assert kv == KeyValue("/pods/a", b"one", kv.revision, kv.revision)
    assert await store.get("/pods/a") == kv
    assert await store.current_revision() == kv.revision
    with pytest.raises(AlreadyExists):
        await store.create("/pods/a", b"two")
    with pytest.raises(NotFound):
        await store.get("/pods/b")


async def test_list_pagination_and_snapshots(store: EtcdStore) -> None:
    for i in range(7):
        await store.create(f"/pods/p{i}", str(i).encode())
    await store.create("/podsx/outside", b"x")  # shares the string prefix without the slash
    first = await store.list("/pods/", limit=3)
    assert [kv.key for kv in first.items] == ["/pods/p0", "/pods/p1", "/pods/p2"]
    assert first.remaining == 4 and first.continue_token
    # Writes after the first page do not leak into later pages: the token pins the revision.
    await store.create("/pods/p9", b"late")
    await store.guaranteed_update("/pods/p4", lambda kv: b"changed")
    keys, values, token = [], [], first.continue_token
    while token:
        page = await store.list("/pods/", limit=3, continue_token=token)
        assert page.revision == first.revision
        keys += [kv.key for kv in page.items]
        values += [kv.value for kv in page.items]
        token = page.continue_token
    assert keys == [f"/pods/p{i}" for i in range(3, 7)]
    assert values[1] == b"4"
    latest = await store.list("/pods/")
    assert len(latest.items) == 8 and latest.continue_token is None
    old = await store.list("/pods/", at_revision=first.revision)
    assert len(old.items) == 7 and old.revision == first.revision
    assert await store.count("/pods/") == 8
    assert await store.count("/") == 9


async def test_guaranteed_update_concurrent_counter(store: EtcdStore) -> None:
    await store.create("/counter", b"0")
    rounds = 10

    def bump(kv: KeyValue | None) -> bytes:
        assert kv is not None
        return str(int(kv.value) + 1).encode()

    async def bump_async(kv: KeyValue | None) -> bytes:
        await asyncio.sleep(0)
        return bump(kv)

    async def worker(n: int) -> None:
        for _ in range(rounds):
            await store.guaranteed_update("/counter", bump_async if n % 2 else bump)

    await asyncio.gather(*(worker(n) for n in range(16)))
    assert (await store.get("/counter")).value == str(16 * rounds).encode()


async def test_guaranteed_update_noop_and_not_found(store: EtcdStore) -> None:
    with pytest.raises(NotFound):
        await store.guaranteed_update("/k", lambda kv: b"x")
    created = await store.guaranteed_update("/k", lambda kv: b"x" if kv is None else b"y", ignore_not_found=True)
    assert created.value == b"x" and created.create_revision == created.revision
    same = await store.guaranteed_update("/k", lambda kv: kv.value)
    assert same == created
    assert await store.current_revision() == created.revision
    updated = await store.guaranteed_update("/k", lambda kv: b"z")
    assert updated.revision > created.revision and updated.create_revision == created.revision


async def test_preconditions(store: EtcdStore) -> None:
    kv = await store.create("/k", b"v1")
    newer = await store.guaranteed_update("/k", lambda c: b"v2")
    with pytest.raises(Conflict):
        await store.guaranteed_update("/k", lambda c: b"v3", Preconditions(revision=kv.revision))
    ok = await store.guaranteed_update("/k", lambda c: b"v3", Preconditions(revision=newer.revision))
    assert ok.value == b"v3"

    def refuse(current: KeyValue) -> None:
        raise Conflict(current.key, "uid mismatch")

    with pytest.raises(Conflict, match="uid mismatch"):
        await store.guaranteed_update("/k", lambda c: b"v4", Preconditions(check=refuse))
    with pytest.raises(Conflict):
        await store.delete("/k", Preconditions(revision=kv.revision))
    assert (await store.get("/k")).value == b"v3"


async def test_delete(store: EtcdStore) -> None:
    kv = await store.create("/k", b"last")
    deleted = await store.delete("/k")
    assert deleted.value == b"last" and deleted.create_revision == kv.revision
    assert deleted.revision == await store.current_revision() > kv.revision
    with pytest.raises(NotFound):
        await store.get("/k")
    with pytest.raises(NotFound):
        await store.delete("/k")


async def test_watch_from_past_revision(store: EtcdStore) -> None:
    start = await store.current_revision()
    await store.create("/w/a", b"1")
    await store.guaranteed_update("/w/a", lambda kv: b"2")
    await store.create("/other", b"ignored")
    await store.create("/w/b", b"3")
    await store.delete("/w/a")
    watch = await store.watch("/w/", since_revision=start)
    got = [await next_event(watch) for _ in range(4)]
    assert [(e.type, e.key, e.value, e.prev_value) for e in got] == [
        ("ADDED", "/w/a", b"1", None),
        ("MODIFIED", "/w/a", b"2", b"1"),
        ("ADDED", "/w/b", b"3", None),
        ("DELETED", "/w/a", b"2", b"2"),
    ]
    revisions = [e.revision for e in got]
    assert revisions == sorted(set(revisions)) and revisions[0] > start
    # Live events keep coming after the replay, still in order.
    live = await store.create("/w/c", b"4")
    event = await next_event(watch)
    assert (event.type, event.key, event.revision) == ("ADDED", "/w/c", live.revision)
    watch.close()
    with pytest.raises(StopAsyncIteration):
        await next_event(watch)


async def test_watch_from_now(store: EtcdStore) -> None:
    await store.create("/w/before", b"x")
    watch = await store.watch("/w/")
    after = await store.create("/w/after", b"y")
    event = await next_event(watch)
    assert (event.key, event.revision) == ("/w/after", after.revision)
    watch.close()


async def test_send_initial_then_live(store: EtcdStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_watch, "INITIAL_PAGE", 2)  # exercise the paged replay
    for i in range(5):
        await store.create(f"/s/{i}", str(i).encode())
    revision = await store.current_revision()
    watch = await store.watch("/s/", send_initial=True)
    initial = [await next_event(watch) for _ in range(5)]
    assert [(e.type, e.key) for e in initial] == [("ADDED", f"/s/{i}") for i in range(5)]
    end = await next_event(watch)
    assert end.type == "BOOKMARK" and end.initial_events_end and end.revision == revision
    kv = await store.guaranteed_update("/s/0", lambda c: b"new")
    event = await next_event(watch)
    assert (event.type, event.key, event.revision) == ("MODIFIED", "/s/0", kv.revision)
    watch.close()

    # As of an older revision: the state then, not now.
    old = await store.watch("/s/", since_revision=revision, send_initial=True)
    values = [(await next_event(old)).value for _ in range(5)]
    assert values[0] == b"0"
    assert (await next_event(old)).initial_events_end
    assert (await next_event(old)).value == b"new"
    old.close()


async def test_bookmarks_never_run_ahead(store: EtcdStore) -> None:
    watch = await store.watch("/quiet/", bookmark_interval=0.2)
    delivered = 0
    seen_advance = False
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        await store.create(f"/busy/{uuid.uuid4().hex}", b"x")  # writes outside the prefix
        if int(time.monotonic() * 10) % 7 == 0:
            delivered = (await store.create(f"/quiet/{uuid.uuid4().hex}", b"q")).revision
        event = await next_event(watch)
        if event.type == "BOOKMARK":
            assert event.revision >= delivered
            assert event.revision <= await store.current_revision()
            seen_advance |= event.revision > delivered
        else:
            delivered = event.revision
    assert seen_advance, "bookmarks should follow etcd's progress on a quiet prefix"
    watch.close()


async def test_compaction(store: EtcdStore) -> None:
    kv = await store.create("/c/a", b"1")
    page = await store.list("/c/", limit=0)
    await store.create("/c/b", b"2")
    first = await store.list("/c/", limit=1)
    for i in range(3):
        await store.guaranteed_update("/c/a", lambda c, i=i: str(i + 10).encode())
    now = await store.current_revision()
    await store.compact(now)
    await store.compact(kv.revision)  # compacting backwards is a no-op
    with pytest.raises(Compacted) as info:
        await store.list("/c/", at_revision=page.revision)
    assert info.value.requested == page.revision and info.value.compacted == now
    with pytest.raises(Compacted):
        await store.list("/c/", limit=1, continue_token=first.continue_token)
    with pytest.raises(Compacted):
        watch = await store.watch("/c/", since_revision=kv.revision)
        await next_event(watch)
    # At or after the compacted revision still works.
    assert len((await store.list("/c/", at_revision=now)).items) == 2
    watch = await store.watch("/c/", since_revision=now)
    kv2 = await store.create("/c/z", b"z")
    assert (await next_event(watch)).revision == kv2.revision
    watch.close()


async def test_unavailable_and_recovery(tmp_path: pathlib.Path) -> None:
    etcd = await start_etcd(tmp_path)
    store = EtcdStore([etcd.endpoint], prefix="/u", request_timeout=1.0, retry_budget=1.5)
    try:
        await store.start()
        await store.create("/k", b"v")
        watch = await store.watch("/", since_revision=await store.current_revision())
        await etcd.stop_async()
        started = time.monotonic()
        with pytest.raises(Unavailable, match=etcd.endpoint):
            await store.get("/k")
        with pytest.raises(Unavailable):
            await store.create("/k2", b"v")
        assert time.monotonic() - started < 10
        await etcd.start()
        assert (await store.get("/k")).value == b"v"
        kv = await store.create("/k2", b"v")
        # The watch resumes from its last revision after the restart.
        store.conn.retry_budget = 10
        event = await next_event(watch, timeout=15)
        assert (event.key, event.revision) == ("/k2", kv.revision)
        watch.close()
    finally:
        await store.close()
        await etcd.stop_async()


async def test_start_fails_over_and_reports_unreachable(etcd_server: EtcdProcess) -> None:  # noqa: F811
    dead = "127.0.0.1:1"
    bad = EtcdStore([dead], retry_budget=0.5)
    with pytest.raises(Unavailable, match=dead):
        await bad.start()
    await bad.close()
    good = EtcdStore([dead, etcd_server.endpoint], prefix="/f", retry_budget=5)
    await good.start()
    assert await good.current_revision() > 0
    await good.close()

"""Watch events decoded and encoded once for all watchers: each watcher still sees its own transitions."""

from __future__ import annotations

import asyncio

import orjson

from sampan.registry.options import ListOptions, WriteOptions
from sampan.registry.registry import Registry
from sampan.registry.shared_events import LineCache, SharedDecoder
from tests.apiserver.conftest import call, configmap
from tests.apiserver.test_watch import read_events

CMS = "/api/v1/namespaces/default/configmaps"
MERGE = "application/merge-patch+json"


async def test_selector_and_plain_watchers_share_events(client) -> None:
    plain = asyncio.create_task(read_events(client, f"{CMS}?watch=true", 5))
    selected = asyncio.create_task(read_events(client, f"{CMS}?watch=true&labelSelector=app%3Da", 3))
    meta_only = asyncio.create_task(
        read_events(
            client, f"{CMS}?watch=true", 5, Accept="application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
        )
    )
    await asyncio.sleep(0.3)
    await call(client, "POST", CMS, configmap("x", app="b"))
    await call(client, "PATCH", f"{CMS}/x", {"metadata": {"labels": {"app": "a"}}}, MERGE)
    await call(client, "PATCH", f"{CMS}/x", {"data": {"a": "2"}}, MERGE)
    await call(client, "PATCH", f"{CMS}/x", {"metadata": {"labels": {"app": "c"}}}, MERGE)
    await call(client, "DELETE", f"{CMS}/x")
    events, sel, metas = await plain, await selected, await meta_only
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]
    assert [e["type"] for e in sel] == ["ADDED", "MODIFIED", "DELETED"]
    assert sel[1]["object"]["data"] == {"a": "2"}
    # Leaving the selection reports the last object that matched.
    assert sel[2]["object"]["metadata"]["labels"] == {"app": "a"}
    assert events[3]["object"]["metadata"]["labels"] == {"app": "c"}
    assert [e["object"]["kind"] for e in metas] == ["PartialObjectMetadata"] * 5
    assert all("data" not in e["object"] for e in metas)
    assert [e["object"]["metadata"]["resourceVersion"] for e in metas] == [
        e["object"]["metadata"]["resourceVersion"] for e in events
    ]


async def test_shared_watches_share_objects_private_ones_do_not(registry: Registry) -> None:
    rs = registry.must("", "v1", "configmaps")
    opts = ListOptions(resource_version="0")
    shared_a = await rs.watch("default", opts, shared=True)
    shared_b = await rs.watch("default", opts, shared=True)
    private = await rs.watch("default", opts)
    try:
        await asyncio.sleep(0.05)
        await rs.create("default", configmap("y"), WriteOptions())
        async with asyncio.timeout(3):
            ka, a = await anext(shared_a)  # type: ignore[call-overload]
            kb, b = await anext(shared_b)  # type: ignore[call-overload]
            kp, p = await anext(private)  # type: ignore[call-overload]
        assert ka == kb == kp == "ADDED"
        assert a is b
        assert p is not a and p == a
        assert a["metadata"]["name"] == "y" and a["apiVersion"] == "v1"
    finally:
        for w in (shared_a, shared_b, private):
            await w.aclose()  # type: ignore[attr-defined]


def test_decoder_checks_value_identity() -> None:
    calls: list[int] = []

    def decode(value: bytes, revision: int) -> dict:
        calls.append(revision)
        return orjson.loads(value)

    dec = SharedDecoder(decode, size=2)
    first = b'{"n": 1}'
    assert dec("k", first, 5, False) is dec("k", first, 5, False)
    assert len(calls) == 1
    # Same key and revision from another store (another bytes object): decoded again.
    other = bytes(bytearray(b'{"n": 2}'))
    assert dec("k", other, 5, False) == {"n": 2}
    assert dec("k", first, 5, True) == {"n": 1}
    assert len(calls) == 3
    dec("k2", first, 6, False)
    dec("k3", first, 7, False)
    assert len(dec._entries) == 2  # bounded


def test_line_cache_per_kind_and_form() -> None:
    cache = LineCache(size=4)
    obj = {"a": 1}
    made: list[str] = []

    def enc(kind: str) -> bytes:
        made.append(kind)
        return orjson.dumps({"type": kind, "object": obj})

    assert cache.get(obj, "ADDED", "object/v1", lambda: enc("ADDED")) == cache.get(
        obj, "ADDED", "object/v1", lambda: enc("ADDED")
    )
    assert b"MODIFIED" in cache.get(obj, "MODIFIED", "object/v1", lambda: enc("MODIFIED"))
    assert made == ["ADDED", "MODIFIED"]
    # An equal but distinct object never reuses another's line.
    cache.get({"a": 1}, "ADDED", "object/v1", lambda: enc("ADDED"))
    assert made == ["ADDED", "MODIFIED", "ADDED"]

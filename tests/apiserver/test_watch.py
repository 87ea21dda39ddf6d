"""Watch over HTTP: event lines, resourceVersion semantics, bookmarks, selectors, Tables."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.apiserver.conftest import call, configmap

CMS = "/api/v1/namespaces/default/configmaps"


async def read_events(client, path: str, count: int, timeout: float = 3.0, **headers: str) -> list[dict[str, Any]]:
    """Opens a watch and returns its first ``count`` events (or all until it ends)."""
    events: list[dict[str, Any]] = []
    resp = await client.get(path, headers=headers)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    try:
        async with asyncio.timeout(timeout):
            while len(events) < count:
                line = await resp.content.readline()
                if not line:
                    break
                assert line.endswith(b"\n") and line.count(b"\n") == 1
                events.append(json.loads(line))
    except TimeoutError:
        pass
    resp.close()
    return events


async def test_initial_events_then_changes(client) -> None:
    await call(client, "POST", CMS, configmap("a"))
    task = asyncio.create_task(read_events(client, f"{CMS}?watch=true", 3))
    await asyncio.sleep(0.2)
    await call(client, "PATCH", f"{CMS}/a", {"data": {"x": "1"}}, "application/merge-patch+json")
    await call(client, "DELETE", f"{CMS}/a")
    events = await task
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[0]["object"]["kind"] == "ConfigMap" and events[0]["object"]["apiVersion"] == "v1"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[1] < rvs[2]


async def test_watch_from_resource_version_skips_older(client) -> None:
    _, a = await call(client, "POST", CMS, configmap("a"))
    _, b = await call(client, "POST", CMS, configmap("b"))
    rv = a["metadata"]["resourceVersion"]
    events = await read_events(client, f"{CMS}?watch=1&resourceVersion={rv}", 1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "b"


async def test_too_old_resource_version_is_410_event(client, registry) -> None:
    for i in range(3):
        await call(client, "POST", CMS, configmap(f"c{i}"))
    await registry.store.compact(await registry.store.current_revision())
    events = await read_events(client, f"{CMS}?watch=true&resourceVersion=2", 5)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"].startswith("too old resource version: 2 (")


async def test_bookmarks(client) -> None:
    _, lst = await call(client, "GET", CMS)
    rv = lst["metadata"]["resourceVersion"]
    events = await read_events(client, f"{CMS}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}", 1)
    assert events[0]["type"] == "BOOKMARK"
    assert events[0]["object"] == {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": rv}}


async def test_send_initial_events(client) -> None:
    await call(client, "POST", CMS, configmap("a"))
    code, st = await call(client, "GET", f"{CMS}?watch=true&sendInitialEvents=true")
    assert code == 422
    path = f"{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    events = await read_events(client, path, 2)
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_selector_transitions(client) -> None:
    await call(client, "POST", CMS, configmap("a", app="x"))
    _, lst = await call(client, "GET", CMS)
    rv = lst["metadata"]["resourceVersion"]
    task = asyncio.create_task(read_events(client, f"{CMS}?watch=true&labelSelector=app%3Dy&resourceVersion={rv}", 3))
    await asyncio.sleep(0.2)
    for value in ("y", "y", "x"):
        patch = {"metadata": {"labels": {"app": value}}, "data": {"n": value + str(asyncio.get_running_loop().time())}}
        await call(client, "PATCH", f"{CMS}/a", patch, "application/merge-patch+json")
    events = await task
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    # Leaving the selection reports the last matching state at the new resourceVersion.
    assert events[2]["object"]["metadata"]["labels"] == {"app": "y"}
    assert int(events[2]["object"]["metadata"]["resourceVersion"]) > int(
        events[1]["object"]["metadata"]["resourceVersion"]
    )


async def test_watch_single_object_by_field_selector(client) -> None:
    await call(client, "POST", CMS, configmap("a"))
    await call(client, "POST", CMS, configmap("b"))
    events = await read_events(client, f"{CMS}?watch=true&fieldSelector=metadata.name%3Db", 2, timeout=1.0)
    assert [e["object"]["metadata"]["name"] for e in events] == ["b"]


async def test_timeout_seconds_ends_stream(client) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await read_events(client, f"{CMS}?watch=true&timeoutSeconds=1", 100, timeout=5.0)
    assert events == [] and loop.time() - started < 4


async def test_watch_as_table(client) -> None:
    await call(client, "POST", CMS, configmap("a"))
    await call(client, "POST", CMS, configmap("b"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    events = await read_events(client, f"{CMS}?watch=true", 2, Accept=accept)
    first, second = (e["object"] for e in events)
    assert first["kind"] == "Table" and len(first["rows"]) == 1 and first["columnDefinitions"]
    assert second["kind"] == "Table" and not second["columnDefinitions"]


async def test_bad_watch_options_fail_before_streaming(client) -> None:
    code, st = await call(client, "GET", f"{CMS}?watch=true&labelSelector=a%20in%20(")
    assert code == 400 and st["kind"] == "Status"

"""HttpClient, LocalClient, informers and the event recorder against a real server
(memory datastore, started in this process on a loopback port)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sampan.api.errors import APIError
from sampan.client.events import NORMAL, EventRecorder
from sampan.client.informer import Informer
from sampan.client.interface import CONFIGMAPS, EVENTS, PODS, Client

server_mod = pytest.importorskip("sampan.server")


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[Any]:  # type: ignore[no-untyped-def]
    options = server_mod.ServerOptions(data_dir=tmp_path, port=0, datastore="memory", agent=False)
    running = await server_mod.start_server(options)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(params=["http", "lite", "local"])
async def client(request, server) -> AsyncIterator[Client]:  # type: ignore[no-untyped-def]
    if request.param == "http":
        from sampan.client.http import HttpClient

        c: Any = HttpClient.from_kubeconfig(server.kubeconfig)
    elif request.param == "lite":  # the node agent's transport (sampan/client/lite.py)
        from sampan.client.lite import LiteHttpClient

        c = LiteHttpClient.from_kubeconfig(server.kubeconfig)
    else:
        from sampan.client.local import LocalClient

        c = LocalClient(server.registry)
    try:
        yield c
    finally:
        await c.close()


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data}


async def test_crud_and_errors(client: Client) -> None:
    created = await client.create(CONFIGMAPS, cm("one", a="1"))
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    got = await client.get(CONFIGMAPS, "one", "default")
    assert got["data"] == {"a": "1"}

    with pytest.raises(APIError) as info:
        await client.create(CONFIGMAPS, cm("one"))
    assert info.value.code == 409 and info.value.reason == "AlreadyExists"
    with pytest.raises(APIError) as info:
        await client.get(CONFIGMAPS, "missing", "default")
    assert info.value.code == 404 and info.value.status["details"]["name"] == "missing"

    patched = await client.patch(CONFIGMAPS, "one", {"data": {"b": "2"}}, "merge", namespace="default")
    assert patched["data"] == {"a": "1", "b": "2"}
    patched = await client.patch(CONFIGMAPS, "one", [{"op": "remove", "path": "/data/a"}], "json", namespace="default")
    assert patched["data"] == {"b": "2"}
    patched["data"]["c"] = "3"
    updated = await client.update(CONFIGMAPS, patched)
    assert updated["data"] == {"b": "2", "c": "3"}
    stale = dict(patched, metadata=dict(patched["metadata"], resourceVersion=created["metadata"]["resourceVersion"]))
    with pytest.raises(APIError) as info:
        await client.update(CONFIGMAPS, stale)
    assert info.value.code == 409

    applied = await client.patch(CONFIGMAPS, "applied", cm("applied", x="y"), "apply", namespace="default",
                                 field_manager="test")
    assert applied["data"] == {"x": "y"}

    for i in range(3):
        await client.create(CONFIGMAPS, cm(f"page-{i}"))
    page = await client.list(CONFIGMAPS, "default", limit=2)
    assert len(page["items"]) == 2 and page["metadata"]["continue"]
    rest = await client.list(CONFIGMAPS, "default", continue_=page["metadata"]["continue"])
    # kube-root-ca.crt is published by the server's root-ca-cert-publisher.
    names = [o["metadata"]["name"] for o in page["items"] + rest["items"]]
    names = [n for n in names if n != "kube-root-ca.crt"]
    assert names == ["applied", "one", "page-0", "page-1", "page-2"]

    await client.delete(CONFIGMAPS, "one", "default")
    with pytest.raises(APIError):
        await client.get(CONFIGMAPS, "one", "default")


async def test_watch_stream(client: Client) -> None:
    listed = await client.list(CONFIGMAPS, "default")
    rv = listed["metadata"]["resourceVersion"]
    await client.create(CONFIGMAPS, cm("w", a="1"))
    await client.patch(CONFIGMAPS, "w", {"data": {"a": "2"}}, "merge", namespace="default")
    await client.delete(CONFIGMAPS, "w", "default")
    seen = []
    async with asyncio.timeout(5):
        async for event in client.watch(CONFIGMAPS, "default", resource_version=rv, timeout_seconds=5):
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                break
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_informer(client: Client) -> None:
    await client.create(CONFIGMAPS, cm("before"))
    inf = Informer(client, CONFIGMAPS, namespace="default")
    log: list[tuple[str, str]] = []
    changed = asyncio.Event()

    def note(kind: str, obj: dict[str, Any]) -> None:
        log.append((kind, obj["metadata"]["name"]))
        changed.set()

    inf.add_handler(
        on_add=lambda o: note("add", o),
        on_update=lambda old, new: note("update", new),
        on_delete=lambda o: note("delete", o),
    )
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        assert ("add", "before") in log
        assert inf.get("default/before")["kind"] == "ConfigMap"

        async def until(entry: tuple[str, str]) -> None:
            async with asyncio.timeout(5):
                while entry not in log:
                    changed.clear()
                    await changed.wait()

        await client.create(CONFIGMAPS, cm("after"))
        await until(("add", "after"))
        await client.patch(CONFIGMAPS, "after", {"data": {"k": "v"}}, "merge", namespace="default")
        await until(("update", "after"))
        assert inf.get("default/after")["data"] == {"k": "v"}
        await client.delete(CONFIGMAPS, "before", "default")
        await until(("delete", "before"))
        assert inf.get("default/before") is None
    finally:
        await inf.stop()


async def test_binding_and_events(client: Client) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    pod = await client.create(PODS, pod)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "namespace": "default"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    await client.create(PODS, binding, subresource="binding")
    assert (await client.get(PODS, "p", "default"))["spec"]["nodeName"] == "n1"

    rec = EventRecorder(client, "test-scheduler")
    rec.event(pod, NORMAL, "Scheduled", "Successfully assigned default/p to n1")
    rec.event(pod, NORMAL, "Scheduled", "Successfully assigned default/p to n1")
    await rec.flush()
    await rec.close()
    events = (await client.list(EVENTS, "default"))["items"]
    mine = [e for e in events if e["reason"] == "Scheduled"]
    assert len(mine) == 1 and mine[0]["count"] == 2
    assert mine[0]["involvedObject"]["uid"] == pod["metadata"]["uid"]


async def test_expired_watch_raises_gone_and_relist_reports_missed_deletes(client: Client, server: Any) -> None:
    from sampan.client.interface import Gone

    old_rv = (await client.list(CONFIGMAPS, "default"))["metadata"]["resourceVersion"]
    await client.create(CONFIGMAPS, cm("x"))
    await client.create(CONFIGMAPS, cm("y"))
    await server.store.compact(await server.store.current_revision())
    with pytest.raises(Gone):
        async with asyncio.timeout(5):
            async for _ in client.watch(CONFIGMAPS, "default", resource_version=old_rv, timeout_seconds=5):
                pass

    # An informer that was away lists again and reports what it missed, deletes included.
    inf = Informer(client, CONFIGMAPS, namespace="default")
    deleted: list[str] = []
    inf.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
    inf.start()
    try:
        assert await inf.wait_for_sync(5)
        await inf.stop()  # "disconnect"
        await client.delete(CONFIGMAPS, "x", "default")
        await client.create(CONFIGMAPS, cm("z"))
        await server.store.compact(await server.store.current_revision())
        inf.start()
        async with asyncio.timeout(5):
            while not ("x" in deleted and inf.get("default/z") is not None):
                await asyncio.sleep(0.01)
        assert deleted == ["x"]
        assert inf.get("default/x") is None
    finally:
        await inf.stop()

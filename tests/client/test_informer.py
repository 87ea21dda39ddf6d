import asyncio
from typing import Any

import pytest

from sampan.client.informer import Informer, InformerFactory, by_node_name, by_owner_uid
from sampan.client.interface import NODES, PODS
from tests.client.fake import FakeClient


def pod(name: str, ns: str = "default", node: str = "", owner: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet", "name": "rs"}]
    obj: dict[str, Any] = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": {}}
    if node:
        obj["spec"]["nodeName"] = node
    return obj


class Recorder:
    def __init__(self, informer: Informer) -> None:
        self.log: list[tuple[str, str]] = []
        informer.add_handler(
            on_add=lambda o: self.log.append(("add", o["metadata"]["name"])),
            on_update=lambda old, new: self.log.append(("update", new["metadata"]["name"])),
            on_delete=lambda o: self.log.append(("delete", o["metadata"]["name"])),
        )

    async def until(self, entry: tuple[str, str], timeout: float = 2.0) -> None:
        async def wait() -> None:
            while entry not in self.log:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(wait(), timeout)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    import sampan.client.informer as informer_mod

    monkeypatch.setattr(informer_mod._Backoff, "next", lambda self: 0.01)


@pytest.fixture
async def fake() -> FakeClient:
    return FakeClient()


async def test_list_then_watch(fake: FakeClient) -> None:
    fake.put(pod("a"))
    fake.put(pod("b", ns="other"))
    inf = Informer(fake, PODS, page_size=1)  # forces pagination
    rec = Recorder(inf)
    assert not inf.has_synced()
    inf.start()
    assert await inf.wait_for_sync(2)
    assert sorted(rec.log) == [("add", "a"), ("add", "b")]
    assert inf.get("default/a")["kind"] == "Pod"  # filled in from the list kind
    assert [o["metadata"]["name"] for o in inf.list("other")] == ["b"]
    assert fake.list_calls == 2
    await settle()
    assert fake.watch_calls == [str(fake.rv)]  # watch starts from the list RV

    fake.put(pod("c"))
    await rec.until(("add", "c"))
    fake.put(pod("a", labels={"x": "y"}))
    await rec.until(("update", "a"))
    fake.remove("default/b" if "default/b" in fake.objects else "other/b")
    await rec.until(("delete", "b"))
    assert inf.get("other/b") is None
    assert sorted(inf.keys()) == ["default/a", "default/c"]
    await inf.stop()


async def test_stream_end_rewatches_from_last_rv(fake: FakeClient) -> None:
    inf = Informer(fake, PODS)
    rec = Recorder(inf)
    inf.start()
    await inf.wait_for_sync(2)
    await settle()
    fake.put(pod("a"))
    await rec.until(("add", "a"))
    rv = fake.rv
    fake.end_watches()
    for _ in range(200):
        if len(fake.watch_calls) == 2:
            break
        await asyncio.sleep(0.005)
    assert fake.watch_calls[-1] == str(rv)
    assert fake.list_calls == 1  # no relist needed
    await inf.stop()


async def test_bookmark_advances_resource_version(fake: FakeClient) -> None:
    inf = Informer(fake, PODS)
    inf.start()
    await inf.wait_for_sync(2)
    await settle()
    fake.put(pod("hidden"), emit=False)  # RV moves on without an event for us
    fake.bookmark()
    await settle()
    assert inf.last_resource_version == str(fake.rv)
    assert inf.get("default/hidden") is None
    await inf.stop()


async def test_410_relists_and_synthesizes_changes(fake: FakeClient) -> None:
    fake.put(pod("keep"))
    fake.put(pod("change"))
    fake.put(pod("vanish"))
    inf = Informer(fake, PODS)
    rec = Recorder(inf)
    inf.start()
    await inf.wait_for_sync(2)
    await settle()
    rec.log.clear()

    # While "disconnected": one deleted, one changed, one new, one untouched.
    fake.remove("default/vanish", emit=False)
    fake.put(pod("change", labels={"v": "2"}), emit=False)
    fake.put(pod("new"), emit=False)
    fake.compact()
    await rec.until(("delete", "vanish"))
    await rec.until(("add", "new"))
    await rec.until(("update", "change"))
    assert ("update", "keep") not in rec.log  # unchanged RV: no noise
    assert fake.list_calls == 2
    assert sorted(inf.keys()) == ["default/change", "default/keep", "default/new"]
    assert inf.get("default/change")["metadata"]["labels"] == {"v": "2"}
    await inf.stop()


async def test_watch_from_expired_rv_relists(fake: FakeClient) -> None:
    fake.put(pod("first"))
    inf = Informer(fake, PODS)
    rec = Recorder(inf)
    inf.start()
    await inf.wait_for_sync(2)
    await settle()
    fake.put(pod("x"), emit=False)
    fake.compacted = fake.rv  # history gone for the next watch
    fake.end_watches()  # re-watch from the old RV -> ERROR 410 -> relist
    await rec.until(("add", "x"))
    assert fake.list_calls == 2
    await inf.stop()


async def test_indexers(fake: FakeClient) -> None:
    fake.put(pod("a", node="n1", owner="rs-1"))
    fake.put(pod("b", node="n2", owner="rs-1"))
    inf = Informer(fake, PODS)
    inf.add_indexer("node", by_node_name)
    inf.start()
    await inf.wait_for_sync(2)
    inf.add_indexer("owner", by_owner_uid)  # added after sync: built from the cache
    assert [o["metadata"]["name"] for o in inf.by_index("node", "n1")] == ["a"]
    assert len(inf.by_index("owner", "rs-1")) == 2
    await settle()
    fake.put(pod("a", node="n2", owner="rs-1"))
    for _ in range(200):
        if len(inf.by_index("node", "n2")) == 2:
            break
        await asyncio.sleep(0.005)
    assert inf.by_index("node", "n1") == []
    fake.remove("default/b")
    for _ in range(200):
        if len(inf.by_index("owner", "rs-1")) == 1:
            break
        await asyncio.sleep(0.005)
    assert [o["metadata"]["name"] for o in inf.by_index("owner", "rs-1")] == ["a"]
    await inf.stop()


async def test_late_handler_gets_existing_objects_and_bad_handler_is_contained(fake: FakeClient) -> None:
    fake.put(pod("a"))
    inf = Informer(fake, PODS)

    def boom(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    inf.add_handler(on_add=boom)
    inf.start()
    await inf.wait_for_sync(2)
    rec = Recorder(inf)
    assert rec.log == [("add", "a")]
    await inf.stop()


async def test_resync_replays_updates(fake: FakeClient) -> None:
    fake.put(pod("a"))
    inf = Informer(fake, PODS, resync_period=0.02)
    rec = Recorder(inf)
    inf.start()
    await rec.until(("update", "a"))
    await inf.stop()


async def test_list_errors_are_retried(fake: FakeClient) -> None:
    calls = 0
    real = fake.list

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("server not up yet")
        return await real(*args, **kwargs)

    fake.list = flaky  # type: ignore[method-assign]
    fake.put(pod("a"))
    inf = Informer(fake, PODS)
    inf.start()
    assert await inf.wait_for_sync(2)
    assert inf.get("default/a") is not None
    await inf.stop()


async def test_factory_shares_informers(fake: FakeClient) -> None:
    fake.put({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"}})
    factory = InformerFactory(fake)
    pods = factory.informer(PODS)
    assert factory.informer(PODS) is pods
    assert factory.informer(PODS, label_selector="app=x") is not pods
    factory.start()
    nodes = factory.informer(NODES)  # asked for after start: starts at once
    assert await factory.wait_for_sync(2)
    assert nodes.get("n1") is not None
    assert all(i.running for i in factory.informers())
    await factory.stop()
    assert not any(i.running for i in factory.informers())


async def test_persistent_410_backs_off(fake: FakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import sampan.client.informer as informer_mod

    monkeypatch.setattr(informer_mod._Backoff, "next", lambda self: 0.05)
    fake.put(pod("a"))
    fake.compacted = 10**9  # every watch is "too old"
    inf = Informer(fake, PODS)
    inf.start()
    await inf.wait_for_sync(2)
    await asyncio.sleep(0.2)
    assert 2 <= fake.list_calls <= 6  # relists, but not in a tight loop
    await inf.stop()

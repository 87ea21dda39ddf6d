"""Service ClusterIP/NodePort allocation through the registry: explicit and dynamic values,
no double allocation under concurrent creates, release on delete and type change, and
allocations that survive a restart on the SQLite store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import SERVICES
from sampan.client.local import LocalClient
from sampan.registry.allocators import PREFIX
from sampan.registry.kubernetes_service import repair_allocations
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore
from sampan.store.sqlite import SQLiteStore


def svc(name: str, **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


@pytest.fixture
async def small() -> LocalClient:
    """29 dynamic cluster IPs (10.96.0.2-30) and 20 node ports."""
    store = MemoryStore()
    await store.start()
    reg = Registry(store, service_cidr="10.96.0.0/27", node_port_range=(30000, 30019))
    await bootstrap(reg)
    yield LocalClient(reg)
    await store.close()


async def allocated(client: LocalClient, kind: str) -> list[str]:
    result = await client.registry.store.list(f"{PREFIX}{kind}/")
    return sorted(kv.key.rsplit("/", 1)[1] for kv in result.items)


async def test_cluster_ip_defaults_and_families(small: LocalClient) -> None:
    out = await small.create(SERVICES, svc("a", selector={"app": "a"}), "default")
    spec = out["spec"]
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["clusterIP"].startswith("10.96.0.") and spec["clusterIP"] != "10.96.0.1"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    headless = await small.create(SERVICES, svc("h", clusterIP="None"), "default")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    ext = await small.create(SERVICES, {"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}, "default")
    assert "clusterIP" not in ext["spec"]
    assert await allocated(small, "serviceips") == [spec["clusterIP"]]


async def test_explicit_ip_and_port_conflicts(small: LocalClient) -> None:
    await small.create(SERVICES, svc("a", type="NodePort", clusterIP="10.96.0.9", ports=[{"port": 80, "nodePort": 30005}]), "default")
    with pytest.raises(APIError) as exc:
        await small.create(SERVICES, svc("b", clusterIP="10.96.0.9"), "default")
    assert exc.value.code == 422
    assert 'spec.clusterIPs: Invalid value: []string{"10.96.0.9"}: failed to allocate IP 10.96.0.9: provided IP is already allocated' in str(exc.value)
    with pytest.raises(APIError) as exc:
        await small.create(SERVICES, svc("c", type="NodePort", ports=[{"port": 80, "nodePort": 30005}]), "default")
    assert exc.value.code == 422
    assert "spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated" in str(exc.value)
    with pytest.raises(APIError) as exc:
        await small.create(SERVICES, svc("d", clusterIP="10.0.0.5"), "default")
    assert "the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/27" in str(exc.value)
    with pytest.raises(APIError) as exc:
        await small.create(SERVICES, svc("f", type="NodePort", ports=[{"port": 80, "nodePort": 40000}]), "default")
    assert "provided port is not in the valid range. The range of valid ports is 30000-30019" in str(exc.value)
    # The failed creates left nothing behind.
    assert await allocated(small, "serviceips") == ["10.96.0.9"]
    assert await allocated(small, "nodeports") == ["30005"]


async def test_concurrent_creates_never_share_an_ip(small: LocalClient) -> None:
    async def create(i: int) -> dict | APIError:
        try:
            return await small.create(SERVICES, svc(f"s{i}"), "default")
        except APIError as exc:
            return exc

    results = await asyncio.gather(*(create(i) for i in range(40)))
    made = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, APIError)]
    ips = [r["spec"]["clusterIP"] for r in made]
    assert len(made) == 29 and len(set(ips)) == 29  # the whole range, each IP once
    assert all("range is full" in str(f) for f in failed) and len(failed) == 11
    assert await allocated(small, "serviceips") == sorted(ips)


async def test_concurrent_creates_of_one_explicit_ip(small: LocalClient) -> None:
    async def create(i: int) -> bool:
        try:
            await small.create(SERVICES, svc(f"x{i}", clusterIP="10.96.0.20"), "default")
            return True
        except APIError as exc:
            assert exc.code == 422
            return False

    wins = await asyncio.gather(*(create(i) for i in range(10)))
    assert wins.count(True) == 1


async def test_concurrent_node_ports(small: LocalClient) -> None:
    async def create(i: int) -> list[int]:
        try:
            out = await small.create(SERVICES, svc(f"n{i}", type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]), "default")
        except APIError:
            return []
        return [p["nodePort"] for p in out["spec"]["ports"]]

    ports = [p for got in await asyncio.gather(*(create(i) for i in range(15))) for p in got]
    assert len(ports) == 20 and len(set(ports)) == 20  # 10 services fit, none shares a port


async def test_release_on_delete_and_type_change(small: LocalClient) -> None:
    out = await small.create(SERVICES, svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"), "default")
    assert out["spec"]["healthCheckNodePort"] and out["spec"]["ports"][0]["nodePort"]
    assert len(await allocated(small, "nodeports")) == 2
    out = await small.patch(SERVICES, "lb", {"spec": {"type": "ClusterIP"}}, "merge", "default")
    assert "nodePort" not in out["spec"]["ports"][0] and "healthCheckNodePort" not in out["spec"]
    assert await allocated(small, "nodeports") == []
    out = await small.patch(SERVICES, "lb", {"spec": {"type": "NodePort"}}, "merge", "default")
    assert await allocated(small, "nodeports") == [str(out["spec"]["ports"][0]["nodePort"])]
    # An update that leaves the allocated values out keeps them.
    replaced = await small.update(SERVICES, {**out, "spec": {**out["spec"], "clusterIP": "", "clusterIPs": [], "ports": [{"port": 80}]}})
    assert replaced["spec"]["clusterIP"] == out["spec"]["clusterIP"]
    assert replaced["spec"]["ports"][0]["nodePort"] == out["spec"]["ports"][0]["nodePort"]
    out = await small.patch(SERVICES, "lb", {"spec": {"type": "ExternalName", "externalName": "a.example"}}, "merge", "default")
    assert "clusterIP" not in out["spec"]
    assert await allocated(small, "serviceips") == [] and await allocated(small, "nodeports") == []
    out = await small.patch(SERVICES, "lb", {"spec": {"type": "ClusterIP", "externalName": None}}, "merge", "default")
    assert await allocated(small, "serviceips") == [out["spec"]["clusterIP"]]
    await small.delete(SERVICES, "lb", "default")
    assert await allocated(small, "serviceips") == []


async def test_dry_run_allocates_nothing(small: LocalClient) -> None:
    out = await small.create(SERVICES, svc("d", type="NodePort"), "default", dry_run=True)
    assert out["spec"]["clusterIP"] and out["spec"]["ports"][0]["nodePort"]
    assert await allocated(small, "serviceips") == [] and await allocated(small, "nodeports") == []


async def test_allocations_survive_restart_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SQLiteStore(db)
    await store.start()
    reg = Registry(store, service_cidr="10.96.0.0/28")  # 13 dynamic IPs
    await bootstrap(reg)
    client = LocalClient(reg)
    first = [(await client.create(SERVICES, svc(f"a{i}"), "default"))["spec"]["clusterIP"] for i in range(8)]
    # A crash between allocating and storing a Service leaves an orphan allocation.
    orphan = next(f"10.96.0.{i}" for i in range(2, 15) if f"10.96.0.{i}" not in first)
    await store.create(f"{PREFIX}serviceips/{orphan}", b'{"owner":{"uid":"gone"},"time":0}')
    await store.close()

    store = SQLiteStore(db)
    await store.start()
    reg = Registry(store, service_cidr="10.96.0.0/28")
    await repair_allocations(reg)
    client = LocalClient(reg)
    second = []
    for i in range(5):
        second.append((await client.create(SERVICES, svc(f"b{i}"), "default"))["spec"]["clusterIP"])
    assert len(set(first + second)) == 13  # the orphan was freed and reused, nothing shared
    with pytest.raises(APIError, match="range is full"):
        await client.create(SERVICES, svc("c"), "default")
    await client.delete(SERVICES, "a0", "default")
    again = await client.create(SERVICES, svc("c"), "default")
    assert again["spec"]["clusterIP"] == first[0]
    await store.close()

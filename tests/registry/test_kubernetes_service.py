"""The ``kubernetes`` Service and its endpoints, kept pointing at the server across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import ENDPOINTS, ENDPOINTSLICES, SERVICES
from sampan.client.local import LocalClient
from sampan.registry.kubernetes_service import ensure_kubernetes_service, repair_allocations
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.sqlite import SQLiteStore


async def start(db: Path) -> tuple[SQLiteStore, LocalClient]:
    store = SQLiteStore(db)
    await store.start()
    reg = Registry(store, service_cidr="10.50.0.0/24")
    await bootstrap(reg)
    await repair_allocations(reg)
    return store, LocalClient(reg)


async def test_created_and_updated_on_restart(tmp_path: Path) -> None:
    store, client = await start(tmp_path / "db")
    await ensure_kubernetes_service(client.registry, "127.0.0.1", 6443)
    svc = await client.get(SERVICES, "kubernetes", "default")
    assert svc["spec"]["clusterIP"] == "10.50.0.1"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    ep = await client.get(ENDPOINTS, "kubernetes", "default")
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    # The first address is the kubernetes Service's alone.
    with pytest.raises(APIError, match="provided IP is already allocated"):
        await client.create(SERVICES, {"metadata": {"name": "x"}, "spec": {"clusterIP": "10.50.0.1", "ports": [{"port": 1}]}}, "default")
    await store.close()

    store, client = await start(tmp_path / "db")
    await ensure_kubernetes_service(client.registry, "0.0.0.0", 7443)  # another port after the restart
    svc = await client.get(SERVICES, "kubernetes", "default")
    assert svc["spec"]["clusterIP"] == "10.50.0.1" and svc["spec"]["ports"][0]["targetPort"] == 7443
    ep = await client.get(ENDPOINTS, "kubernetes", "default")
    assert ep["subsets"][0]["ports"][0]["port"] == 7443
    slice_ = await client.get(ENDPOINTSLICES, "kubernetes", "default")
    assert slice_["endpoints"][0]["addresses"] == ["127.0.0.1"] and slice_["ports"][0]["port"] == 7443
    with pytest.raises(APIError, match="provided IP is already allocated"):
        await client.create(SERVICES, {"metadata": {"name": "x"}, "spec": {"clusterIP": "10.50.0.1", "ports": [{"port": 1}]}}, "default")
    await store.close()


async def test_start_cut_short_after_allocating_the_first_address(tmp_path: Path) -> None:
    """A start stopped between allocating 10.50.0.1 and storing the Service must not
    block the next start (the leaked allocation is fresh, so the age grace would keep it)."""
    store, client = await start(tmp_path / "db")
    await client.registry.allocators.ips.allocate(
        client.registry.allocators.ips.first, {"namespace": "default", "name": "kubernetes", "uid": "lost"}
    )
    await store.close()

    store, client = await start(tmp_path / "db")
    await ensure_kubernetes_service(client.registry, "127.0.0.1", 6443)
    svc = await client.get(SERVICES, "kubernetes", "default")
    assert svc["spec"]["clusterIP"] == "10.50.0.1"
    await store.close()

"""The kube-dns Service and its endpoints, with the endpoints controllers running alongside."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import ENDPOINTS, ENDPOINTSLICES, SERVICES
from sampan.client.local import LocalClient
from sampan.controllers.base import ControllerOptions
from sampan.controllers.manager import ControllerManager
from sampan.proxy.dns_service import dns_cluster_ip, ensure_dns_service
from sampan.registry.registry import Registry
from tests.harness import memory_registry

CIDR = "198.19.0.0/16"


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    async with memory_registry(service_cidr=CIDR) as reg:
        yield reg


def test_cluster_ip_is_tenth_address() -> None:
    assert dns_cluster_ip("10.43.0.0/16") == "10.43.0.10"
    assert dns_cluster_ip(CIDR) == "198.19.0.10"
    with pytest.raises(ValueError):
        dns_cluster_ip("198.19.0.0/29")


async def test_creates_service_and_endpoints(registry: Registry) -> None:
    client = LocalClient(registry, field_manager="test")
    svc = await ensure_dns_service(client, CIDR, "198.18.0.1")
    assert svc["spec"]["clusterIP"] == "198.19.0.10"
    assert not svc["spec"].get("selector")
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")
    ]
    ep = await client.get(ENDPOINTS, "kube-dns", "kube-system")
    assert ep["subsets"][0]["addresses"] == [{"ip": "198.18.0.1"}]
    es = await client.get(ENDPOINTSLICES, "kube-dns", "kube-system")
    assert es["endpoints"][0]["addresses"] == ["198.18.0.1"]
    assert es["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert es["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "sampan-dns"
    # idempotent: a second call writes nothing
    before = es["metadata"]["resourceVersion"]
    await ensure_dns_service(client, CIDR, "198.18.0.1")
    assert (await client.get(ENDPOINTSLICES, "kube-dns", "kube-system"))["metadata"]["resourceVersion"] == before


async def test_repairs_changed_endpoints_and_wrong_ip(registry: Registry) -> None:
    client = LocalClient(registry, field_manager="test")
    await ensure_dns_service(client, CIDR, "198.18.0.1")
    await ensure_dns_service(client, CIDR, "198.18.0.2")  # the node's address changed
    ep = await client.get(ENDPOINTS, "kube-dns", "kube-system")
    assert ep["subsets"][0]["addresses"] == [{"ip": "198.18.0.2"}]
    es = await client.get(ENDPOINTSLICES, "kube-dns", "kube-system")
    assert es["endpoints"][0]["addresses"] == ["198.18.0.2"]
    # someone recreated the Service with another address: put back on the fixed one
    await client.delete(SERVICES, "kube-dns", "kube-system")
    await client.create(SERVICES, {"metadata": {"name": "kube-dns"}, "spec": {"clusterIP": "198.19.0.77", "ports": [{"port": 53}]}}, "kube-system")
    svc = await ensure_dns_service(client, CIDR, "198.18.0.2")
    assert svc["spec"]["clusterIP"] == "198.19.0.10"


async def test_fixed_ip_taken_by_another_service_is_an_error(registry: Registry) -> None:
    client = LocalClient(registry, field_manager="test")
    await client.create(SERVICES, {"metadata": {"name": "squatter"}, "spec": {"clusterIP": "198.19.0.10", "ports": [{"port": 1}]}}, "default")
    with pytest.raises(APIError):
        await ensure_dns_service(client, CIDR, "198.18.0.1")


async def test_endpoints_controllers_leave_it_alone(registry: Registry) -> None:
    client = LocalClient(registry, field_manager="test")
    manager = ControllerManager(
        LocalClient(registry, field_manager="kube-controller-manager"),
        ("endpoints", "endpointslice"),
        ControllerOptions(service_cidr=CIDR),
    )
    await manager.start()
    try:
        await ensure_dns_service(client, CIDR, "198.18.0.1")
        # a Service the controllers do manage, as a marker that they have processed the queue
        await client.create(SERVICES, {"metadata": {"name": "marker"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}}, "kube-system")
        for _ in range(500):
            try:
                await client.get(ENDPOINTS, "marker", "kube-system")
                break
            except APIError:
                await asyncio.sleep(0.02)
        else:
            raise AssertionError("the endpoints controller never handled the marker Service")
        slices = await client.list(ENDPOINTSLICES, "kube-system", label_selector="kubernetes.io/service-name=kube-dns")
        assert [s["metadata"]["name"] for s in slices["items"]] == ["kube-dns"]
        ep = await client.get(ENDPOINTS, "kube-dns", "kube-system")
        assert ep["subsets"][0]["addresses"] == [{"ip": "198.18.0.1"}]
    finally:
        await manager.stop()

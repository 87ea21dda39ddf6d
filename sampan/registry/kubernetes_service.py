"""The ``kubernetes`` Service in ``default`` and its Endpoints/EndpointSlice, pointing at
this API server (what upstream's bootstrap controller keeps in place), and the repair of
service address allocations at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampan.client.fixedservice import endpoint_slice_for, endpoints_for, ensure_object
from sampan.client.interface import ENDPOINTS, ENDPOINTSLICES, SERVICES, Client
from sampan.registry.meta import Obj
from sampan.registry.options import ListOptions

if TYPE_CHECKING:
    from sampan.registry.registry import Registry

NAMESPACE = "default"
NAME = "kubernetes"
MANAGER = "kube-apiserver"


def service(cluster_ip: str, port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
        },
    }


def endpoints(ip: str, port: int) -> Obj:
    return endpoints_for(NAME, NAMESPACE, {}, ip, [{"name": "https", "port": port, "protocol": "TCP"}])


def endpoint_slice(ip: str, port: int) -> Obj:
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    return endpoint_slice_for(NAME, NAMESPACE, {}, ip, ports, {"ready": True})


def advertise_address(bind_address: str) -> str:
    """The address other components reach this server at (loopback for a wildcard bind)."""
    if bind_address in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    if bind_address == "::":
        return "::1"
    return bind_address


async def ensure(client: Client, cluster_ip: str, ip: str, port: int) -> None:
    """The Service, Endpoints and EndpointSlice as they should be."""
    await ensure_object(client, SERVICES, service(cluster_ip, port), ("spec.ports",))
    await ensure_object(client, ENDPOINTS, endpoints(ip, port), ("subsets",))
    await ensure_object(client, ENDPOINTSLICES, endpoint_slice(ip, port), ("addressType", "endpoints", "ports"))


async def ensure_kubernetes_service(registry: Registry, bind_address: str, port: int) -> None:
    """At start, before serving."""
    from sampan.client.local import LocalClient  # the client package imports the registry

    client = LocalClient(registry, field_manager=MANAGER)
    await ensure(client, registry.allocators.ips.first_ip, advertise_address(bind_address), port)


async def repair_allocations(registry: Registry) -> None:
    """Run before serving: frees addresses and ports no Service holds (see allocators)."""
    listed = await registry.must("", "v1", "services").list("", ListOptions())
    await registry.allocators.repair(list(listed.get("items") or []))

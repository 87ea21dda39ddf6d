"""The ``kubernetes`` Service in ``default`` and its Endpoints/EndpointSlice, pointing at
this API server (what upstream's bootstrap controller keeps in place), and the repair of
service address allocations at start."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from sampan.api import errors
from sampan.client.interface import ENDPOINTS, ENDPOINTSLICES, SERVICES, Client, ResourceRef
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
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    }


def endpoint_slice(ip: str, port: int) -> Obj:
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


def advertise_address(bind_address: str) -> str:
    """The address other components reach this server at (loopback for a wildcard bind)."""
    if bind_address in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    if bind_address == "::":
        return "::1"
    return bind_address


async def _ensure(client: Client, ref: ResourceRef, want: Obj, same: Callable[[Obj, Obj], bool]) -> None:
    """Creates ``want`` or, when the live object differs where ``same`` looks, puts those parts back."""
    try:
        live = await client.get(ref, NAME, NAMESPACE)
    except errors.APIError as exc:
        if exc.code != 404:
            raise
        await client.create(ref, want, NAMESPACE)
        return
    if same(live, want):
        return
    for key, value in want.items():
        if key == "spec":
            live["spec"] = {**(live.get("spec") or {}), **value}
        elif key not in ("metadata", "apiVersion", "kind"):
            live[key] = value
    live["metadata"]["labels"] = {**(live["metadata"].get("labels") or {}), **(want["metadata"].get("labels") or {})}
    await client.update(ref, live)


async def ensure(client: Client, cluster_ip: str, ip: str, port: int) -> None:
    """The Service, Endpoints and EndpointSlice as they should be."""
    await _ensure(client, SERVICES, service(cluster_ip, port), lambda live, want: live["spec"].get("ports") == want["spec"]["ports"])
    await _ensure(client, ENDPOINTS, endpoints(ip, port), lambda live, want: live.get("subsets") == want["subsets"])
    await _ensure(
        client,
        ENDPOINTSLICES,
        endpoint_slice(ip, port),
        lambda live, want: live.get("endpoints") == want["endpoints"] and live.get("ports") == want["ports"],
    )


async def ensure_kubernetes_service(registry: Registry, bind_address: str, port: int) -> None:
    """At start, before serving."""
    from sampan.client.local import LocalClient  # the client package imports the registry

    client = LocalClient(registry, field_manager=MANAGER)
    await ensure(client, registry.allocators.ips.first_ip, advertise_address(bind_address), port)


async def repair_allocations(registry: Registry) -> None:
    """Run before serving: frees addresses and ports no Service holds (see allocators)."""
    listed = await registry.must("", "v1", "services").list("", ListOptions())
    await registry.allocators.repair(list(listed.get("items") or []))

"""The ``kube-dns`` Service in ``kube-system`` (fixed ClusterIP: the 10th address of the
service CIDR, as upstream installs it) and its Endpoints/EndpointSlice pointing at the node's
DNS server. The Service has no selector and the slice carries its own managed-by label, so
the endpoints controllers leave both alone (sampan.client.fixedservice)."""

from __future__ import annotations

import ipaddress
from typing import Any

from sampan.client.fixedservice import contained, endpoint_slice_for, endpoints_for, ensure_object, get_or_none
from sampan.client.interface import ENDPOINTS, ENDPOINTSLICES, NAMESPACES, SERVICES, Client, is_not_found

Obj = dict[str, Any]

NAMESPACE = "kube-system"
NAME = "kube-dns"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MANAGER = "sampan-dns"
METRICS_PORT = 9153


def dns_cluster_ip(service_cidr: str) -> str:
    """``10.43.0.0/16`` -> ``10.43.0.10``."""
    net = ipaddress.ip_network(service_cidr, strict=False)
    if net.num_addresses <= 10:
        raise ValueError(f"service CIDR {service_cidr} is too small for the DNS address")
    return str(net.network_address + 10)


def _ports(port: int) -> list[Obj]:
    return [
        {"name": "dns", "port": port, "protocol": "UDP"},
        {"name": "dns-tcp", "port": port, "protocol": "TCP"},
        {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP"},
    ]


def service(cluster_ip: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": str(METRICS_PORT), "prometheus.io/scrape": "true"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [{**p, "targetPort": p["port"]} for p in _ports(53)],
        },
    }


def endpoints(ip: str, port: int) -> Obj:
    return endpoints_for(NAME, NAMESPACE, {"k8s-app": "kube-dns"}, ip, _ports(port))


def endpoint_slice(ip: str, port: int) -> Obj:
    labels = {MANAGED_BY: MANAGER, "k8s-app": "kube-dns"}
    conditions = {"ready": True, "serving": True, "terminating": False}
    return endpoint_slice_for(NAME, NAMESPACE, labels, ip, _ports(port), conditions)


async def ensure_dns_service(client: Client, service_cidr: str, listen_ip: str, port: int = 53) -> Obj:
    """Creates or repairs the kube-dns Service, Endpoints and EndpointSlice; returns the Service."""
    cluster_ip = dns_cluster_ip(service_cidr)
    try:
        await client.get(NAMESPACES, NAMESPACE)
    except Exception as exc:
        if not is_not_found(exc):
            raise
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    live = await get_or_none(client, SERVICES, NAME, NAMESPACE)
    if live is not None and (live.get("spec") or {}).get("clusterIP") != cluster_ip:
        # clusterIP is immutable: put the Service back with the address pods are told to use
        await client.delete(SERVICES, NAME, NAMESPACE)
    want = service(cluster_ip)
    live = await get_or_none(client, SERVICES, NAME, NAMESPACE)
    if live is None:
        svc = await client.create(SERVICES, want, NAMESPACE)
    else:
        spec = live.get("spec") or {}
        if spec.get("selector") or not contained(want["spec"]["ports"], spec.get("ports")):
            spec.pop("selector", None)
            spec["ports"] = want["spec"]["ports"]
            live["spec"] = spec
            live = await client.update(SERVICES, live)
        svc = live
    await ensure_object(client, ENDPOINTS, endpoints(listen_ip, port), ("subsets",))
    await ensure_object(client, ENDPOINTSLICES, endpoint_slice(listen_ip, port), ("addressType", "endpoints", "ports"))
    return svc

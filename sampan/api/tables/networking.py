"""networking.k8s.io and discovery.k8s.io kinds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .common import (AGE, NAME, Column, Obj, age, dig, format_label_selector, lb_ingress, list_with_more, name,
                     register)

INGRESS_COLUMNS = [
    NAME,
    Column("Class", doc="The name of the IngressClass resource that should be used for additional configuration"),
    Column("Hosts", doc="Hosts that incoming requests are matched against before the ingress rule"),
    Column("Address", doc="Address is a list containing ingress points for the load-balancer"),
    Column("Ports", doc="Ports of TLS configurations that open"),
    AGE,
]


def ingress_hosts(rules: list[Obj] | None, limit: int = 3) -> str:
    rules = rules or []
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == limit:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - limit} more..." if more else text


@register("networking.k8s.io", "ingresses", INGRESS_COLUMNS)
def ingress_row(ing: Obj, now: datetime) -> list[Any]:
    spec = ing.get("spec") or {}
    return [
        name(ing), spec.get("ingressClassName") or "<none>", ingress_hosts(spec.get("rules")),
        lb_ingress(dig(ing, "status", "loadBalancer")), "80, 443" if spec.get("tls") else "80", age(ing, now),
    ]


INGRESS_CLASS_COLUMNS = [
    NAME,
    Column("Controller", doc="Controller that is responsible for handling this class"),
    Column("Parameters", doc="A reference to a resource with additional parameters"),
    AGE,
]


@register("networking.k8s.io", "ingressclasses", INGRESS_CLASS_COLUMNS)
def ingress_class_row(ic: Obj, now: datetime) -> list[Any]:
    params = dig(ic, "spec", "parameters")
    text = "<none>"
    if params:
        text = params.get("kind", "")
        if params.get("apiGroup") is not None:
            text += "." + params["apiGroup"]
        text += "/" + params.get("name", "")
    return [name(ic), dig(ic, "spec", "controller", default=""), text, age(ic, now)]


@register("networking.k8s.io", "networkpolicies",
          [NAME, Column("Pod-Selector", doc=("networking.v1.NetworkPolicySpec", "podSelector")), AGE])
def network_policy_row(np: Obj, now: datetime) -> list[Any]:
    return [name(np), format_label_selector(dig(np, "spec", "podSelector")), age(np, now)]


@register("networking.k8s.io", "servicecidrs",
          [NAME, Column("CIDRs", doc=("networking.v1beta1.ServiceCIDRSpec", "cidrs")), AGE])
def service_cidr_row(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), ",".join(dig(obj, "spec", "cidrs", default=[])), age(obj, now)]


@register("networking.k8s.io", "ipaddresses",
          [NAME, Column("ParentRef", doc=("networking.v1beta1.IPAddressSpec", "parentRef"))])
def ip_address_row(obj: Obj, now: datetime) -> list[Any]:
    ref = dig(obj, "spec", "parentRef")
    text = "<none>"
    if ref:
        group, resource = ref.get("group", ""), ref.get("resource", "")
        text = (f"{resource}.{group}" if group else resource).lower()
        if ref.get("namespace"):
            text += "/" + ref["namespace"]
        text += "/" + ref.get("name", "")
    return [name(obj), text]


SLICE = "discovery.v1.EndpointSlice"
SLICE_COLUMNS = [
    NAME,
    Column("AddressType", doc=(SLICE, "addressType")),
    Column("Ports", doc=(SLICE, "ports")),
    Column("Endpoints", doc=(SLICE, "endpoints")),
    AGE,
]


@register("discovery.k8s.io", "endpointslices", SLICE_COLUMNS)
def endpoint_slice_row(es: Obj, now: datetime) -> list[Any]:
    ports = []
    for port in es.get("ports") or []:
        if port.get("port") is not None:
            ports.append(str(port["port"]))
        elif port.get("name") is not None:
            ports.append(port["name"])
        else:
            ports.append("*")
    addresses = [a for ep in es.get("endpoints") or [] for a in ep.get("addresses") or []]
    return [
        name(es), es.get("addressType", ""), list_with_more(ports, len(ports)),
        list_with_more(addresses, len(addresses)), age(es, now),
    ]

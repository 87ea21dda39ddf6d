"""ServiceLB (like K3s's klipper ServiceLB): a LoadBalancer Service gets the InternalIPs of
the ready nodes as its ``status.loadBalancer.ingress``; the service proxy on each node then
accepts traffic to those addresses on the service port. Services naming another
``loadBalancerClass`` belong to someone else and are left alone."""

from __future__ import annotations

from typing import Any

from sampan.client.interface import NODES, SERVICES, is_not_found, object_key, split_key
from sampan.controllers.base import Controller, register
from sampan.controllers.util.conditions import get_condition
from sampan.proxy.rules import LB_CLASS

Obj = dict[str, Any]


def node_ingress(nodes: list[Obj]) -> list[Obj]:
    """InternalIP of every ready, schedulable-or-not node, sorted for a stable status."""
    ips: set[str] = set()
    for node in nodes:
        status = node.get("status") or {}
        ready = get_condition(status, "Ready")
        if not ready or ready.get("status") != "True":
            continue
        for addr in status.get("addresses") or []:
            if addr.get("type") == "InternalIP" and addr.get("address") and ":" not in addr["address"]:
                ips.add(addr["address"])
    return [{"ip": ip, "ipMode": "VIP"} for ip in sorted(ips)]


def ours(svc: Obj) -> bool:
    cls = (svc.get("spec") or {}).get("loadBalancerClass")
    return cls in (None, "", LB_CLASS)


@register
class ServiceLBController(Controller):
    name = "servicelb"
    component = "service-lb-controller"

    def setup(self) -> None:
        self.services = self.watch(SERVICES)
        self.nodes = self.informer(NODES)

        def all_lbs(_obj: Obj) -> None:
            for svc in self.services.list():
                if (svc.get("spec") or {}).get("type") == "LoadBalancer":
                    self.queue.add(object_key(svc))

        self.nodes.add_handler(on_add=all_lbs, on_update=lambda old, new: all_lbs(new), on_delete=all_lbs)

    async def reconcile(self, key: str) -> float | None:
        svc = self.services.get(key)
        if svc is None or not ours(svc):
            return None
        is_lb = (svc.get("spec") or {}).get("type") == "LoadBalancer"
        nodes = node_ingress(self.nodes.list())
        want = nodes if is_lb else []
        have = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        # A Service that is no longer a LoadBalancer loses the addresses we gave it;
        # status someone else wrote on other Services is left alone.
        if have == want or (not is_lb and have != nodes):
            return None
        ns, name = split_key(key)
        try:
            await self.client.patch(
                SERVICES, name, {"status": {"loadBalancer": {"ingress": want or None}}}, "merge", ns, subresource="status"
            )
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        if is_lb and want and not have:
            self.recorder.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
        return None

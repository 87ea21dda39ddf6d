"""The Endpoints controller: for each Service with a selector, an Endpoints object listing
the selected pods' addresses (ready and not ready) grouped by their resolved ports."""

from __future__ import annotations

from typing import Any

from sampan.client.interface import ENDPOINTS, PODS, SERVICES, is_not_found, split_key
from sampan.controllers.base import Controller, register
from sampan.controllers.util import endpoints as eu
from sampan.controllers.util.pods import is_ready

Obj = dict[str, Any]

# Upstream truncates an Endpoints object at this many addresses and says so.
MAX_ADDRESSES = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


def desired_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """Addresses grouped by identical port lists (upstream's RepackSubsets), sorted."""
    spec = svc.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    headless_no_ports = spec.get("clusterIP") == "None" and not spec.get("ports")
    groups: dict[tuple[Any, ...], tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not eu.should_publish(pod, publish_not_ready):
            continue
        address: Obj = {"ip": eu.pod_ip(pod)}
        host = eu.hostname(svc, pod)
        if host:
            address["hostname"] = host
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        address["targetRef"] = eu.target_ref(pod)
        ports = eu.endpoint_ports(svc, pod)
        if not ports and not headless_no_ports:
            continue
        ports.sort(key=lambda p: (p["name"], p["port"], p["protocol"]))
        key = tuple(tuple(sorted(p.items())) for p in ports)
        group = groups.setdefault(key, (ports, [], []))
        (group[1] if publish_not_ready or is_ready(pod) else group[2]).append(address)
    subsets = []
    for ports, ready, not_ready in groups.values():
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: a["ip"])
        if ports:
            subset["ports"] = [{k: v for k, v in p.items() if k != "name" or v} for p in ports]
        subsets.append(subset)
    subsets.sort(key=lambda s: str(s.get("ports")))
    return subsets


def _truncate(subsets: list[Obj]) -> bool:
    total = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
    if total <= MAX_ADDRESSES:
        return False
    budget = MAX_ADDRESSES
    for s in subsets:
        for field in ("addresses", "notReadyAddresses"):
            if field in s:
                s[field] = s[field][:budget]
                budget -= len(s[field])
                if not s[field]:
                    del s[field]
    return True


@register
class EndpointsController(Controller):
    name = "endpoints"
    component = "endpoint-controller"
    workers = 2

    def setup(self) -> None:
        self.services = self.watch(SERVICES)
        self.pods = self.informer(PODS)
        eu.watch_pods_for_services(self.pods, self.services, self.queue.add)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        current = await self._current(ns, name)
        if svc is None:
            if current is not None:
                await self._delete(ns, name)
            return
        if not eu.selector(svc):
            return  # Endpoints of selectorless Services belong to the user
        pods = eu.selected_pods(svc, self.pods)
        subsets = desired_subsets(svc, pods)
        truncated = _truncate(subsets)
        labels = eu.service_labels(svc)
        if current is not None and (current.get("subsets") or []) == subsets and (
            current["metadata"].get("labels") or {}
        ) == labels and (OVER_CAPACITY in (current["metadata"].get("annotations") or {})) == truncated:
            return
        annotations = dict((current or {}).get("metadata", {}).get("annotations") or {})
        trigger = eu.trigger_time(svc, pods)
        if trigger:
            annotations[eu.TRIGGER_TIME] = trigger
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        meta: Obj = {"name": name, "namespace": ns, "labels": labels, "annotations": annotations}
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": subsets}
        if current is None:
            await self.client.create(ENDPOINTS, body, ns)
        else:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.client.update(ENDPOINTS, body)

    async def _current(self, ns: str | None, name: str) -> Obj | None:
        try:
            return await self.client.get(ENDPOINTS, name, ns)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    async def _delete(self, ns: str | None, name: str) -> None:
        try:
            await self.client.delete(ENDPOINTS, name, ns)
        except Exception as exc:
            if not is_not_found(exc):
                raise

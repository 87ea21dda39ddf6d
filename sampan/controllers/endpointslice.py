"""The EndpointSlice controller: for each Service with a selector, EndpointSlices of at most
100 endpoints each, one set per distinct port list, with ready/serving/terminating
conditions (terminating pods are kept so proxies can drain them)."""

from __future__ import annotations

from typing import Any

from sampan.client.interface import ENDPOINTSLICES, PODS, SERVICES, is_not_found, split_key
from sampan.controllers.base import Controller, register
from sampan.controllers.util import endpoints as eu
from sampan.controllers.util.pods import controller_ref, is_ready

Obj = dict[str, Any]

MAX_ENDPOINTS = 100
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"


def desired_endpoints(svc: Obj, pods: list[Obj]) -> dict[tuple[Any, ...], tuple[list[Obj], list[Obj]]]:
    """Port-list key -> (ports, endpoints), endpoints sorted by address."""
    spec = svc.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    out: dict[tuple[Any, ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        ip = eu.pod_ip(pod)
        if not eu.should_publish(pod, True) or ":" in ip:
            continue  # IPv4 slices only
        terminating = eu.is_terminating(pod)
        serving = is_ready(pod)
        endpoint: Obj = {
            "addresses": [ip],
            "conditions": {
                "ready": publish_not_ready or (serving and not terminating),
                "serving": publish_not_ready or serving,
                "terminating": terminating,
            },
        }
        host = eu.hostname(svc, pod)
        if host:
            endpoint["hostname"] = host
        endpoint["targetRef"] = eu.target_ref(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            endpoint["nodeName"] = node
        ports = eu.endpoint_ports(svc, pod)
        if not ports and spec.get("ports") and spec.get("clusterIP") != "None":
            continue
        ports.sort(key=lambda p: (p["name"], p["port"], p["protocol"]))
        key = tuple(tuple(sorted(p.items())) for p in ports)
        out.setdefault(key, (ports, []))[1].append(endpoint)
    for _ports, eps in out.values():
        eps.sort(key=lambda e: e["addresses"][0])
    return out


def _slice_key(slice_: Obj) -> tuple[Any, ...]:
    ports = sorted(slice_.get("ports") or [], key=lambda p: (p.get("name", ""), p.get("port"), p.get("protocol")))
    return tuple(tuple(sorted(p.items())) for p in ports)


@register
class EndpointSliceController(Controller):
    name = "endpointslice"
    component = "endpoint-slice-controller"
    workers = 2

    def setup(self) -> None:
        self.services = self.watch(SERVICES)
        self.pods = self.informer(PODS)
        eu.watch_pods_for_services(self.pods, self.services, self.queue.add)
        # A slice changed or deleted behind our back is put back.
        slices = self.informer(ENDPOINTSLICES)

        def on_slice(*objs: Obj) -> None:
            for obj in objs:
                labels = obj["metadata"].get("labels") or {}
                if labels.get(MANAGED_BY) == CONTROLLER_NAME and labels.get(SERVICE_NAME):
                    self.queue.add(f"{obj['metadata']['namespace']}/{labels[SERVICE_NAME]}")

        slices.add_handler(on_add=lambda o: None, on_update=lambda _o, n: on_slice(n), on_delete=on_slice)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        # A live list (not a cache) so a slice created a moment ago is never created twice.
        listed = await self.client.list(
            ENDPOINTSLICES, ns, label_selector=f"{SERVICE_NAME}={name},{MANAGED_BY}={CONTROLLER_NAME}"
        )
        existing: list[Obj] = sorted(listed.get("items") or [], key=lambda s: s["metadata"]["name"])
        svc = self.services.get(key)
        if svc is None or not eu.selector(svc):
            for slice_ in existing:
                await self._delete(slice_)
            return
        pods = eu.selected_pods(svc, self.pods)
        wanted = desired_endpoints(svc, pods)
        if not wanted:
            wanted = {(): ([], [])}  # an empty slice says "no endpoints" rather than "unknown"
        labels = {**eu.service_labels(svc), SERVICE_NAME: name, MANAGED_BY: CONTROLLER_NAME}
        trigger = eu.trigger_time(svc, pods)
        pool = {k: [s for s in existing if _slice_key(s) == k] for k in wanted}
        used: set[str] = set()
        for port_key, (ports, endpoints) in wanted.items():
            chunks = [endpoints[i : i + MAX_ENDPOINTS] for i in range(0, len(endpoints), MAX_ENDPOINTS)] or [[]]
            for chunk in chunks:
                reuse = pool[port_key].pop(0) if pool[port_key] else None
                body = self._slice(svc, ports, chunk, labels, trigger, reuse)
                if reuse is None:
                    await self.client.create(ENDPOINTSLICES, body, ns)
                    continue
                used.add(reuse["metadata"]["name"])
                if not _same(reuse, body):
                    await self.client.update(ENDPOINTSLICES, body)
        for slice_ in existing:
            if slice_["metadata"]["name"] not in used:
                await self._delete(slice_)

    def _slice(
        self, svc: Obj, ports: list[Obj], endpoints: list[Obj], labels: dict[str, str], trigger: str, reuse: Obj | None
    ) -> Obj:
        name = svc["metadata"]["name"]
        meta: Obj = {"namespace": svc["metadata"]["namespace"], "labels": labels}
        if reuse is None:
            meta["generateName"] = f"{name}-"
            annotations: dict[str, str] = {}
        else:
            meta["name"] = reuse["metadata"]["name"]
            meta["resourceVersion"] = reuse["metadata"]["resourceVersion"]
            annotations = dict(reuse["metadata"].get("annotations") or {})
        if trigger:
            annotations[eu.TRIGGER_TIME] = trigger
        meta["annotations"] = annotations
        meta["ownerReferences"] = [controller_ref({**svc, "apiVersion": "v1", "kind": "Service"})]
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": meta,
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }

    async def _delete(self, slice_: Obj) -> None:
        try:
            await self.client.delete(ENDPOINTSLICES, slice_["metadata"]["name"], slice_["metadata"]["namespace"])
        except Exception as exc:
            if not is_not_found(exc):
                raise


def _same(live: Obj, want: Obj) -> bool:
    lm, wm = live["metadata"], want["metadata"]
    return (
        (live.get("endpoints") or []) == want["endpoints"]
        and (live.get("ports") or []) == want["ports"]
        and (lm.get("labels") or {}) == wm["labels"]
        and (lm.get("ownerReferences") or []) == wm["ownerReferences"]
    )

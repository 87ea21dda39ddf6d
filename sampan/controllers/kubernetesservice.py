"""Keeps the ``kubernetes`` Service in ``default`` and its Endpoints/EndpointSlice pointing
at this API server: put back when deleted or changed (upstream's bootstrap controller).
The server creates them before serving; this loop repairs them while it runs."""

from __future__ import annotations

import ipaddress
from typing import Any

from sampan.client.interface import ENDPOINTS, ENDPOINTSLICES, SERVICES
from sampan.controllers.base import Controller, register
from sampan.registry import kubernetes_service as ks

Obj = dict[str, Any]
KEY = f"{ks.NAMESPACE}/{ks.NAME}"
RESYNC_SECONDS = 10.0  # upstream's endpoint reconcile interval


def _ours(obj: Obj) -> str | None:
    m = obj.get("metadata") or {}
    return KEY if m.get("name") == ks.NAME and m.get("namespace") == ks.NAMESPACE else None


@register
class KubernetesServiceController(Controller):
    name = "kubernetesservice"
    component = "kube-apiserver"

    def setup(self) -> None:
        for ref in (SERVICES, ENDPOINTS, ENDPOINTSLICES):
            self.watch(ref, _ours)
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        target = self.ctx.options.extra.get("apiserver")
        if not target:
            return None  # not running inside a server: nothing to point at
        ip, port = target
        cluster_ip = str(next(ipaddress.ip_network(self.ctx.options.service_cidr, strict=False).hosts()))
        await ks.ensure(self.client, cluster_ip, ip, port)
        return RESYNC_SECONDS

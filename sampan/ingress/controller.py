"""The ingress controller for IngressClass `sampan`: informers -> routing model -> data path.

Every relevant change (Ingress, IngressClass, Service, EndpointSlice, Secret) schedules
one debounced sync that rebuilds the whole model; the data path decides whether anything
actually changed (nginx is reloaded only when its generated config differs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import Protocol

from sampan.client.informer import Informer
from sampan.client.interface import (
    ENDPOINTSLICES,
    SECRETS,
    SERVICES,
    Client,
    Obj,
    ResourceRef,
    is_conflict,
    is_not_found,
    object_key,
)
from sampan.client.wakeup import wait_event
from sampan.ingress.model import (
    CLASS_NAME,
    CONTROLLER_NAME,
    DEFAULT_CLASS_ANNOTATION,
    Model,
    Resolver,
    build_model,
    ours,
)

log = logging.getLogger(__name__)

INGRESSES = ResourceRef("networking.k8s.io", "v1", "ingresses")
INGRESSCLASSES = ResourceRef("networking.k8s.io", "v1", "ingressclasses", False)
TLS_SECRET_TYPE = "kubernetes.io/tls"


class DataPath(Protocol):
    async def start(self) -> None: ...

    async def apply(self, model: Model) -> None: ...

    async def stop(self) -> None: ...


def load_balancer_status(addresses: list[str]) -> list[Obj]:
    out: list[Obj] = []
    for addr in addresses:
        try:
            ipaddress.ip_address(addr)
            out.append({"ip": addr})
        except ValueError:
            out.append({"hostname": addr})
    return out


class IngressController:
    """Serves Ingresses of class `sampan` on ``bind_address`` ports ``http_port``/``https_port``.

    ``data_path`` is "nginx" (Debian's nginx as a child process; ~10x the throughput, see
    BENCHMARKS.md), "inprocess" (an aiohttp reverse proxy inside this process), or "auto"
    (nginx when installed, else the in-process proxy).
    """

    def __init__(
        self,
        client: Client,
        data_dir: Path | str,
        http_port: int = 80,
        https_port: int = 443,
        bind_address: str = "0.0.0.0",
        node_addresses: list[str] | None = None,
        data_path: str = "auto",
        class_name: str = CLASS_NAME,
        debounce: float = 0.1,
        resync_period: float = 30.0,
    ) -> None:
        self.client = client
        self.dir = Path(data_dir) / "ingress"
        self.http_port, self.https_port = http_port, https_port
        self.bind_address = bind_address
        self.node_addresses = list(node_addresses or [])
        self.class_name = class_name
        self.debounce = debounce
        self.resync_period = resync_period
        self.informers = {
            "ingresses": Informer(client, INGRESSES),
            "classes": Informer(client, INGRESSCLASSES),
            "services": Informer(client, SERVICES),
            "slices": Informer(client, ENDPOINTSLICES),
            # Only TLS Secrets matter; the field selector keeps every other Secret out of memory.
            "secrets": Informer(client, SECRETS, field_selector=f"type={TLS_SECRET_TYPE}"),
        }
        self.data_path = self._make_data_path(data_path)
        self.model: Model | None = None
        self.syncs = 0  # completed syncs, for tests and metrics
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _make_data_path(self, kind: str) -> DataPath:
        if kind == "auto":
            from sampan.ingress.nginx import nginx_binary

            kind = "nginx" if nginx_binary() else "inprocess"
        if kind == "nginx":
            from sampan.ingress.nginxpath import NginxDataPath

            return NginxDataPath(self.dir, self.bind_address, self.http_port, self.https_port)
        if kind == "inprocess":
            from sampan.ingress.inprocess import InProcessDataPath

            return InProcessDataPath(self.dir, self.bind_address, self.http_port, self.https_port)
        raise ValueError(f"unknown ingress data path {kind!r}")

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        await self._ensure_class()
        for name, informer in self.informers.items():
            if name == "secrets":
                informer.add_handler(self._on_secret, lambda old, new: self._on_secret(new), self._on_secret)
            else:
                informer.add_handler(self._changed, lambda old, new: self._changed(new), self._changed)
            informer.start()
        for informer in self.informers.values():
            await informer.wait_for_sync()
        await self.data_path.start()
        await self.sync()
        self._task = asyncio.create_task(self._loop(), name="ingress sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.gather(*(i.stop() for i in self.informers.values()))
        await self.data_path.stop()

    async def _ensure_class(self) -> None:
        ingress_class = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": self.class_name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": CONTROLLER_NAME},
        }
        try:
            await self.client.create(INGRESSCLASSES, ingress_class)
        except Exception as exc:
            if not is_conflict(exc):  # already there: the user may have changed it, keep theirs
                raise

    # -- change handling ------------------------------------------------------------
    def _changed(self, obj: Obj) -> None:
        self._dirty.set()

    def _on_secret(self, obj: Obj) -> None:
        if obj.get("type") == TLS_SECRET_TYPE:
            self._dirty.set()

    async def _loop(self) -> None:
        while True:
            # Also on a timeout: the periodic sync restarts nginx if it died, retries failed status updates.
            await wait_event(self._dirty, self.resync_period)
            await asyncio.sleep(self.debounce)  # coalesce bursts (e.g. a rollout's slice updates)
            self._dirty.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("ingress sync failed; retrying")
                await asyncio.sleep(1.0)
                self._dirty.set()

    # -- the sync ---------------------------------------------------------------------
    def our_ingresses(self) -> list[Obj]:
        classes = self.informers["classes"].list()
        return [i for i in self.informers["ingresses"].list() if ours(i, classes, self.class_name)]

    def build(self) -> Model:
        services = {object_key(s): s for s in self.informers["services"].list()}
        secrets = {object_key(s): s for s in self.informers["secrets"].list() if s.get("type") == TLS_SECRET_TYPE}
        resolver = Resolver(services, self.informers["slices"].list(), secrets)
        return build_model(self.our_ingresses(), resolver)

    async def sync(self) -> None:
        model = self.build()
        await self.data_path.apply(model)
        self.model = model
        await self._update_statuses()
        self.syncs += 1

    async def _update_statuses(self) -> None:
        wanted = load_balancer_status(self.node_addresses)
        for ing in self.our_ingresses():
            current = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if current == wanted:
                continue
            meta = ing["metadata"]
            patch = {"status": {"loadBalancer": {"ingress": wanted or None}}}
            try:
                await self.client.patch(
                    INGRESSES, meta["name"], patch, "merge", meta["namespace"], subresource="status"
                )
            except Exception as exc:
                if not is_not_found(exc):
                    log.warning("ingress %s/%s: status update failed: %s", meta["namespace"], meta["name"], exc)

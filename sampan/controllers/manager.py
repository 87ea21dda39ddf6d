"""Starts a set of controllers over one shared informer factory and stops them together.

The factory may be shared further (the server gives the scheduler the same one, so each
collection is cached once in the process); whoever created it stops it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from collections.abc import Iterable

import sampan.controllers
from sampan.client.compact import informer_transform
from sampan.client.informer import InformerFactory
from sampan.client.interface import Client
from sampan.controllers.base import REGISTERED, Controller, ControllerContext, ControllerOptions

log = logging.getLogger(__name__)

_SKIP = {"base", "manager"}


def load_all() -> dict[str, type[Controller]]:
    """Imports every controller module so each registers itself."""
    for module in pkgutil.iter_modules(sampan.controllers.__path__):
        if module.name not in _SKIP and not module.name.startswith("_"):
            importlib.import_module(f"sampan.controllers.{module.name}")
    return dict(REGISTERED)


class ControllerManager:
    def __init__(
        self,
        client: Client,
        names: Iterable[str] | None = None,
        options: ControllerOptions | None = None,
        disabled: Iterable[str] = (),
        informers: InformerFactory | None = None,
    ) -> None:
        available = load_all()
        wanted = list(names) if names is not None else sorted(available)
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise ValueError(f"unknown controllers: {', '.join(unknown)}")
        skip = set(disabled)
        self._owns_informers = informers is None
        if informers is None:
            informers = InformerFactory(client, transform=informer_transform())
        self.context = ControllerContext(client, informers, options or ControllerOptions())
        self.controllers = [available[n](self.context) for n in wanted if n not in skip]
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, name: str) -> Controller:
        return next(c for c in self.controllers if c.name == name)

    async def start(self, sync_timeout: float = 30.0) -> None:
        for controller in self.controllers:
            controller.setup()
        self.context.informers.start()
        if not await self.context.informers.wait_for_sync(sync_timeout):
            log.warning("controller informers did not sync within %.0f s; starting anyway", sync_timeout)
        for controller in self.controllers:
            self._tasks.append(asyncio.create_task(controller.run(), name=f"controller-{controller.name}"))

    async def stop(self) -> None:
        for controller in self.controllers:
            controller.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._owns_informers:
            await self.context.informers.stop()
        for recorder in self.context.recorders.values():
            await recorder.close()

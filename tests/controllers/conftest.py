"""Controllers run in-process over a registry on the memory store, through the in-process
client, exactly as the server runs them (same admission, validation and defaulting)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sampan.client.local import LocalClient
from sampan.controllers.base import ControllerOptions
from sampan.controllers.manager import ControllerManager
from sampan.registry.registry import Registry
from tests.harness import eventually  # noqa: F401 - re-exported for the tests

StartControllers = Callable[..., Awaitable[ControllerManager]]


@pytest.fixture
async def start_controllers(registry: Registry) -> AsyncIterator[StartControllers]:
    """``await start_controllers("namespace", "garbagecollector", options=...)`` runs those controllers."""
    managers: list[ControllerManager] = []

    async def start(*names: str, options: ControllerOptions | None = None) -> ControllerManager:
        manager = ControllerManager(LocalClient(registry, field_manager="kube-controller-manager"), names, options)
        await manager.start()
        managers.append(manager)
        return manager

    yield start
    for manager in managers:
        await manager.stop()




@pytest.fixture(autouse=True)
def frozen_informer_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Informer objects are shared between controllers (and parts of them between objects):
    in these tests they are frozen, so a controller changing one in place fails loudly."""
    monkeypatch.setenv("SAMPAN_CHECK_INFORMER_MUTATIONS", "1")

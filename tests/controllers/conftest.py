"""Controllers run in-process over a registry on the memory store, through the in-process
client, exactly as the server runs them (same admission, validation and defaulting)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sampan.client.local import LocalClient
from sampan.controllers.base import ControllerOptions
from sampan.controllers.manager import ControllerManager
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    store = MemoryStore()
    await store.start()
    reg = Registry(store, bookmark_interval=0.2)
    await bootstrap(reg)
    yield reg
    await store.close()


@pytest.fixture
def client(registry: Registry) -> LocalClient:
    return LocalClient(registry, field_manager="test")


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


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Polls ``check`` until it returns something truthy without raising; returns that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s") from last
        await asyncio.sleep(interval)

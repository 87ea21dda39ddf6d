"""The agent test harness: an in-process registry, a LocalClient, and a NodeAgent over the
fakes (runtime, images, network, cgroups) from fakes.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sampan.client.local import LocalClient
from sampan.node.agent import NodeAgent
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore
from tests.node.fakes import FakeCgroups, FakeImages, FakeNetwork, FakeRuntime


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = await check()
            if result:
                return result
        except (AssertionError, KeyError, IndexError, TypeError) as exc:
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s") from last
        await asyncio.sleep(0.05)


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


class Harness:
    def __init__(self, client: LocalClient, tmp: Path) -> None:
        self.client = client
        self.tmp = tmp
        self.runtime = FakeRuntime()
        self.images = FakeImages(tmp / "rootfs", ["busybox:1.36", "busybox:latest"])
        self.images.add("busybox:1.36")
        self.network = FakeNetwork()
        self.cgroups = FakeCgroups()
        self.agents: list[NodeAgent] = []

    async def start(self, **kw: Any) -> NodeAgent:
        agent = NodeAgent(self.client, "node-a", self.tmp / "data", self.runtime, self.images, self.network,
                          self.cgroups, node_ip="198.18.255.1", **kw)
        await agent.start()
        self.agents.append(agent)
        return agent

    async def stop(self) -> None:
        while self.agents:
            await self.agents.pop().stop()


@pytest.fixture
async def harness(client: LocalClient, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(client, tmp_path)
    yield h
    await h.stop()



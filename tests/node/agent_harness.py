"""The agent test harness: a NodeAgent (on the ``client`` of tests/conftest.py) over the
fakes (runtime, images, network, cgroups) from fakes.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sampan.client.local import LocalClient
from sampan.node.agent import NodeAgent
from sampan.server import RunningServer, ServerOptions, start_server
from tests.harness import eventually as shared_eventually
from tests.node.fakes import FakeCgroups, FakeImages, FakeNetwork, FakeRuntime


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    # Agent checks dig into status dicts that fill in over time, so lookups may fail meanwhile.
    return await shared_eventually(check, timeout, 0.05, (AssertionError, KeyError, IndexError, TypeError))


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




@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A real API server over HTTPS (memory store, no controllers or scheduler) in DATA=tmp_path/server."""
    running = await start_server(ServerOptions(data_dir=tmp_path / "server", port=0, datastore="memory",
                                               service_cidr="198.19.0.0/16", controllers=[], scheduler=False))
    yield running
    await running.stop()

"""The agent without its server: pods keep running and restarting from the local state file,
a restarted agent runs them from that file alone, and once the server is back the status is
reported without restarting anything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sampan.client.interface import PODS
from sampan.client.local import LocalClient
from sampan.node.agent import NodeAgent
from tests.node.fakes import FakeCgroups, FakeImages, FakeNetwork, FakeRuntime, pod
from tests.node.agent_harness import eventually


class Switch:
    """A client whose server can be switched off (every call fails like a refused connection)."""

    def __init__(self, inner: LocalClient) -> None:
        self.inner = inner
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise aiohttp.ClientConnectionError("connection refused")

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name == "watch":
            def watch(*args: Any, **kw: Any) -> Any:
                self._check()
                return self._watch(target(*args, **kw))
            return watch
        if not callable(target):
            return target

        async def call(*args: Any, **kw: Any) -> Any:
            self._check()
            return await target(*args, **kw)

        return call

    async def _watch(self, events: Any) -> Any:
        async for event in events:
            self._check()
            yield event


@pytest.fixture
async def setup(client: LocalClient, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    switch = Switch(client)
    parts: dict[str, Any] = {"switch": switch, "runtime": FakeRuntime(), "agents": []}
    images = FakeImages(tmp_path / "rootfs")
    images.add("busybox:1.36")

    async def start() -> NodeAgent:
        agent = NodeAgent(switch, "node-a", tmp_path / "data", parts["runtime"], images, FakeNetwork(),  # type: ignore[arg-type]
                          FakeCgroups(), lease_interval=0.2)
        await agent.start()
        parts["agents"].append(agent)
        return agent

    parts["start"] = start
    yield parts
    switch.down = False
    for agent in parts["agents"]:
        await agent.stop()


async def test_restarts_offline_and_reports_when_back(setup: dict[str, Any], client: LocalClient) -> None:
    switch, runtime = setup["switch"], setup["runtime"]
    agent = await setup["start"]()
    await client.create(PODS, pod("p"), "default")

    async def running() -> dict | None:
        p = await client.get(PODS, "p", "default")
        return p if p.get("status", {}).get("phase") == "Running" else None

    await eventually(running)
    switch.down = True
    runtime.crash(runtime.started[0])  # the container dies while the server is away
    await eventually(lambda: _async(len(runtime.started) == 2))  # restarted from what the agent knows
    # A new agent, still without the server, runs the pod from its state file (no new container).
    await agent.stop()
    setup["agents"].remove(agent)
    agent = await setup["start"]()
    assert [p["metadata"]["name"] for p in await agent.state.pods()] == ["p"]
    assert "p" in [w.pod["metadata"]["name"] for w in agent.workers.values()]
    switch.down = False

    async def reported() -> bool:
        p = await client.get(PODS, "p", "default")
        cs = p["status"]["containerStatuses"][0]
        return cs["restartCount"] == 1 and "running" in cs["state"]

    await eventually(reported)
    assert len(runtime.started) == 2  # nothing restarted when the server came back


async def _async(value: Any) -> Any:
    return value

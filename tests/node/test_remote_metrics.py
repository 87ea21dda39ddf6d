"""Resource metrics of a remote agent: the API server reads the agent's latest snapshot over its
CA-verified HTTPS endpoint (``/metrics/resource``, join token required) and serves metrics.k8s.io,
read here by the real ``kubectl top`` (fake runtime, fixed snapshot)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from sampan.client.local import LocalClient
from sampan.client.interface import PODS
from sampan.node.remote_streams import AgentEndpoint
from sampan.server import RunningServer
from tests.node.test_remote_streams import kubectl, pytestmark, remote, running_pod, server  # noqa: F401


def _fix(endpoint: AgentEndpoint, snapshot: dict[str, Any]) -> None:
    async def collect() -> dict[str, Any]:
        return snapshot

    endpoint.agent.metrics.collect = collect  # type: ignore[method-assign]
    endpoint.agent.metrics.snapshot = snapshot


async def test_kubectl_top_reads_remote_agent(server: RunningServer, remote: AgentEndpoint) -> None:
    await running_pod(server, "p")
    uid = (await LocalClient(server.registry).get(PODS, "p", "default"))["metadata"]["uid"]
    now = time.time()
    _fix(remote, {"node": {"name": "remote", "timestamp": now, "window": 15.0, "cpu": 300_000_000,
                           "memory": 512 * 1024 * 1024},
                  "pods": [{"namespace": "default", "name": "p", "uid": uid, "timestamp": now, "window": 15.0,
                            "containers": [{"name": "c", "cpu": 7_000_000, "memory": 3 * 1024 * 1024}]}]})
    async with aiohttp.ClientSession() as s:
        async with s.get(f"https://127.0.0.1:{remote.port}/metrics/resource", ssl=False) as resp:
            assert resp.status == 401  # the join token is required
    code, out, err = await kubectl(server, "top", "node", "remote")
    assert code == 0, err
    assert out.splitlines()[1].split()[:2] == ["remote", "300m"] and "512Mi" in out
    code, out, err = await kubectl(server, "top", "pod", "p", "--containers")
    assert code == 0, err
    assert out.splitlines()[1].split() == ["p", "c", "7m", "3Mi"]

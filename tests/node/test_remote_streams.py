"""Streams of pods on a remote agent: the agent serves its pinned HTTPS endpoint, the API
server proxies kubectl logs, exec and port-forward to it (fake runtime; the agent talks to
the server over HTTPS with the join token, exactly as ``sampan agent --server`` does)."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sampan.client.http import HttpClient
from sampan.client.interface import NODES, PODS
from sampan.client.local import LocalClient
from sampan.node.agent import NodeAgent
from sampan.node.remote_streams import ENDPOINT_LABEL, FINGERPRINT_ANNOTATION, AgentEndpoint
from sampan.node.runner import read_join_token
from sampan.server import RunningServer, ServerOptions, start_server
from tests.node.agent_harness import eventually
from tests.node.fakes import FakeCgroups, FakeImages, FakeNetwork, FakeRuntime, pod

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(ServerOptions(data_dir=tmp_path, port=0, datastore="memory", scheduler=False,
                                               controllers=[]))
    yield running
    await running.stop()


@pytest.fixture
async def remote(server: RunningServer, tmp_path: Path) -> AsyncIterator[AgentEndpoint]:
    token = read_join_token(tmp_path)
    assert token
    ctx = ssl.create_default_context(cafile=str(tmp_path / "server" / "tls" / "ca.crt"))
    client = HttpClient(server.url, ctx, token=token)
    images = FakeImages(tmp_path / "rootfs")
    images.add("busybox:1.36")
    agent = NodeAgent(client, "remote", tmp_path / "node", FakeRuntime(), images, FakeNetwork(), FakeCgroups(),
                      node_ip="127.0.0.1")
    endpoint = AgentEndpoint(agent, token, host="127.0.0.1", port=0)
    await endpoint.start()  # before the agent registers: the Node then advertises it
    await agent.start()
    yield endpoint
    await agent.stop()
    await endpoint.stop()
    await client.close()


async def kubectl(server: RunningServer, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(str(KUBECTL), "--kubeconfig", str(server.kubeconfig), *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def running_pod(server: RunningServer, name: str, **spec: object) -> LocalClient:
    client = LocalClient(server.registry, field_manager="test")
    await client.create(PODS, pod(name, node="remote", containers=[
        {"name": "c", "image": "busybox:1.36", "command": ["serve", "forever"]}], **spec), "default")

    async def ready() -> bool:
        return (await client.get(PODS, name, "default"))["status"]["phase"] == "Running"

    await eventually(ready)
    return client


async def test_node_advertises_pinned_endpoint(server: RunningServer, remote: AgentEndpoint) -> None:
    node = await LocalClient(server.registry).get(NODES, "remote")
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == remote.port
    assert node["metadata"]["annotations"][FINGERPRINT_ANNOTATION] == remote.fingerprint
    assert node["metadata"]["labels"][ENDPOINT_LABEL] == "true"
    # Without the join token the endpoint answers nothing.
    async with aiohttp.ClientSession() as s:
        async with s.get(f"https://127.0.0.1:{remote.port}/logs/default/p", ssl=False) as resp:
            assert resp.status == 401


async def test_kubectl_logs_and_exec_through_remote_agent(server: RunningServer, remote: AgentEndpoint) -> None:
    await running_pod(server, "p")
    code, out, err = await kubectl(server, "logs", "p")
    assert code == 0, err
    assert out == "started serve forever\n"
    code, out, err = await kubectl(server, "logs", "p", "--previous")
    assert code != 0 and 'previous terminated container "c" in pod "p" not found' in err
    code, out, err = await kubectl(server, "exec", "p", "--", "echo", "hi")
    assert code == 0 and out == "echo hi\n", err
    code, _, _ = await kubectl(server, "exec", "p", "--", "fail")
    assert code == 1
    code, _, err = await kubectl(server, "exec", "p", "-c", "nope", "--", "echo")
    assert code != 0 and "container nope is not valid for pod p" in err


async def test_kubectl_port_forward_through_remote_agent(server: RunningServer, remote: AgentEndpoint) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        writer.write(b"pong:" + data)
        await writer.drain()
        writer.close()

    backend = await asyncio.start_server(echo, "127.0.0.1", 0)
    target = backend.sockets[0].getsockname()[1]
    # hostNetwork: the fake network has no netns to enter, so the agent dials its own loopback.
    await running_pod(server, "web", hostNetwork=True)
    proc = await asyncio.create_subprocess_exec(str(KUBECTL), "--kubeconfig", str(server.kubeconfig),
                                                "port-forward", "pod/web", f":{target}",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        local = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        writer.write(b"ping")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), 30) == b"pong:ping"
        writer.close()
    finally:
        proc.terminate()
        await proc.wait()
        backend.close()
        await backend.wait_closed()


async def test_wrong_pin_is_refused(server: RunningServer, remote: AgentEndpoint) -> None:
    client = await running_pod(server, "p")
    # An endpoint that is not the one the node published (here: a wrong pin) gets nothing.
    await client.patch(NODES, "remote", {"metadata": {"annotations": {FINGERPRINT_ANNOTATION: "00" * 32}}}, "merge")

    async def refused() -> str:
        code, _, err = await kubectl(server, "logs", "p")
        return err if code != 0 else ""

    err = await eventually(refused)
    assert "error dialing the node agent" in err and "fingerprint" in err.lower()

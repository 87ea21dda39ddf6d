"""Probe handlers against real local servers (HTTP, TCP, gRPC health) and the fake runtime's
exec, and the probe loops' effect on readiness and liveness."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from sampan.node.podstatus import Tracked
from sampan.node.probes import ContainerProber, run_handler
from sampan.node.runtimes.base import ContainerState
from tests.node.fakes import FakeRuntime


class Worker:
    """The parts of a pod worker probes use."""

    def __init__(self, pod_ip: str = "127.0.0.1") -> None:
        self.agent = SimpleNamespace(runtime=FakeRuntime())
        self.view = SimpleNamespace(pod_ip=pod_ip)
        self.pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "ports": [{"name": "http", "containerPort": 0}]}], "terminationGracePeriodSeconds": 1}}
        self.wake = asyncio.Event()
        self.events: list[tuple[str, str, str]] = []
        self.killed: list[str] = []

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    async def kill_for_liveness(self, t: Tracked, message: str) -> None:
        self.killed.append(message)
        t.state = ContainerState(t.id or "", "u", t.name, "exited", exit_code=137)

    async def stop_one(self, t: Tracked, grace: float) -> None:
        t.state = ContainerState(t.id or "", "u", t.name, "exited", exit_code=137)


@pytest.fixture
async def http_server() -> Any:
    seen: list[dict[str, str]] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="fine")

    async def bad(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/healthz", ok)
    app.router.add_get("/bad", bad)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield port, seen
    await runner.cleanup()


async def test_http_get_probe(http_server: Any) -> None:
    port, seen = http_server
    w = Worker()
    ok, body = await run_handler(w, "cid", {"httpGet": {"path": "/healthz", "port": port, "httpHeaders": [
        {"name": "X-Check", "value": "yes"}]}}, timeout=2)
    assert ok and body == "fine"
    assert seen[0]["X-Check"] == "yes" and seen[0]["User-Agent"].startswith("kube-probe/")
    ok, message = await run_handler(w, "cid", {"httpGet": {"path": "/bad", "port": port}}, timeout=2)
    assert not ok and "statuscode: 500" in message
    # A named port resolves through the container's ports.
    w.pod["spec"]["containers"][0]["ports"][0]["containerPort"] = port
    ok, _ = await run_handler(w, "cid", {"httpGet": {"path": "/healthz", "port": "http"}}, timeout=2,
                              container=w.pod["spec"]["containers"][0])
    assert ok


async def test_tcp_probe() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    w = Worker()
    assert (await run_handler(w, "cid", {"tcpSocket": {"port": port}}, timeout=2))[0]
    server.close()
    await server.wait_closed()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    ok, message = await run_handler(w, "cid", {"tcpSocket": {"port": closed}}, timeout=2)
    assert not ok and f"127.0.0.1:{closed}" in message


async def test_exec_probe() -> None:
    w = Worker()
    assert await run_handler(w, "cid", {"exec": {"command": ["true"]}}) == (True, "true\n")
    ok, _ = await run_handler(w, "cid", {"exec": {"command": ["fail"]}})
    assert not ok
    assert w.agent.runtime.execs == [["true"], ["fail"]]


async def test_grpc_probe() -> None:
    grpc = pytest.importorskip("grpc")
    serving = {"": 1, "down": 2}

    async def check(request: bytes, context: Any) -> bytes:
        name = request[2:].decode() if request else ""
        return bytes([0x08, serving.get(name, 0)])

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                     response_serializer=lambda b: b)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        w = Worker()
        assert (await run_handler(w, "cid", {"grpc": {"port": port}}, timeout=3))[0]
        ok, message = await run_handler(w, "cid", {"grpc": {"port": port, "service": "down"}}, timeout=3)
        assert not ok and "NOT_SERVING" in message
    finally:
        await server.stop(None)


async def test_readiness_and_liveness_loops() -> None:
    w = Worker()
    runtime = w.agent.runtime
    t = Tracked("c", id="cid", state=ContainerState("cid", "u", "c", "running"), started=True)
    spec = {"name": "c", "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["alive"]}, "periodSeconds": 1, "failureThreshold": 2}}
    prober = ContainerProber(w, t, spec)  # type: ignore[arg-type]
    prober.start()
    try:
        await asyncio.wait_for(_until(lambda: t.ready), 5)
        runtime.exec_results["ready"] = 1
        await asyncio.wait_for(_until(lambda: not t.ready), 5)
        assert any(e[1] == "Unhealthy" and e[2].startswith("Readiness probe failed") for e in w.events)
        runtime.exec_results["alive"] = 1
        await asyncio.wait_for(_until(lambda: bool(w.killed)), 5)
        assert len(w.killed) == 1
    finally:
        prober.stop()


async def _until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.05)

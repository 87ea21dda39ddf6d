"""exec, attach, cp and port-forward driven by the real kubectl and the kubernetes client
against a minimal aiohttp server wired to the streaming handlers and LocalProcessBackend."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from sampan.apiserver.streaming import LocalProcessBackend, handle_attach, handle_exec, handle_portforward

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")

POD: dict[str, Any] = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {"name": "p", "namespace": "default", "uid": "0f9a6d1e-0000-4000-8000-000000000001", "resourceVersion": "1"},
    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo attached; exit 4"]}]},
    "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True, "state": {"running": {}}}]},
}
API_RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"], "shortNames": ["po"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions", "verbs": ["create", "get"]},
        {"name": "pods/attach", "singularName": "", "namespaced": True, "kind": "PodAttachOptions", "verbs": ["create", "get"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": True, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app(backend: LocalProcessBackend) -> web.Application:
    async def version(_: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})

    async def pod(_: web.Request) -> web.Response:
        return web.json_response(POD)

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/api", _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}))
    app.router.add_get("/apis", _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
    app.router.add_get("/api/v1", _json(API_RESOURCES))
    app.router.add_get("/api/v1/namespaces/default/pods/p", pod)
    for sub, handler in (("exec", handle_exec), ("attach", handle_attach), ("portforward", handle_portforward)):
        app.router.add_route("*", f"/api/v1/namespaces/default/pods/p/{sub}", _streaming(handler, backend))
    return app


def _streaming(handler: Any, backend: LocalProcessBackend) -> Any:
    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request, POD, backend)
    return route


def _json(body: dict) -> Any:
    async def handler(_: web.Request) -> web.Response:
        return web.json_response(body)
    return handler


class Cluster:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: " + url +
            "\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n    namespace: default\n"
            "current-context: t\nusers:\n- name: u\n  user: {}\n"
        )
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp)}

    async def kubectl(self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**self.env, **(env or {})},
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    def python_client(self) -> Any:
        client = pytest.importorskip("kubernetes.client")

        config = client.Configuration()
        config.host = self.url
        return client.CoreV1Api(client.ApiClient(config))


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    runner = web.AppRunner(make_app(LocalProcessBackend(cwd=str(tmp_path))))
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Cluster(f"http://127.0.0.1:{port}", tmp_path)
    finally:
        await runner.cleanup()


@pytest.fixture
async def echo_server() -> AsyncIterator[int]:
    """A tiny HTTP/1.0 server that echoes the request line back, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        body = b"echo: " + line.strip()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


SPDY_EXEC = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
SPDY_PORT_FORWARD = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}


@pytest.mark.parametrize("env", [{}, SPDY_EXEC], ids=["websocket", "spdy"])
async def test_kubectl_exec_output_and_exit_code(cluster: Cluster, env: dict[str, str]) -> None:
    rc, out, err = await cluster.kubectl("exec", "p", "--", "sh", "-c", "echo out; echo err >&2; exit 3", env=env)
    assert rc == 3
    assert out == "out\n"
    assert "err\n" in err
    assert "command terminated with exit code 3" in err


@pytest.mark.parametrize("env", [{}, SPDY_EXEC], ids=["websocket", "spdy"])
async def test_kubectl_exec_stdin(cluster: Cluster, env: dict[str, str]) -> None:
    data = b"".join(b"line %d\n" % i for i in range(20000))
    rc, out, err = await cluster.kubectl("exec", "-i", "p", "--", "cat", stdin=data, env=env)
    assert (rc, err) == (0, "")
    assert out.encode() == data


async def test_kubectl_exec_unknown_command(cluster: Cluster) -> None:
    rc, _, err = await cluster.kubectl("exec", "p", "--", "/no/such/binary")
    assert rc != 0
    assert "Internal error occurred" in err


async def test_kubectl_attach(cluster: Cluster) -> None:
    rc, out, err = await cluster.kubectl("attach", "p", "-c", "c")
    assert out == "attached\n"
    assert rc == 4, err


async def test_kubectl_cp_both_ways(cluster: Cluster) -> None:
    src = cluster.tmp / "local.txt"
    src.write_bytes(b"hello from kubectl cp\n" * 1000)
    pod_dir = cluster.tmp / "pod"
    pod_dir.mkdir()
    rc, _, err = await cluster.kubectl("cp", str(src), f"p:{pod_dir}/copied.txt")
    assert rc == 0, err
    assert (pod_dir / "copied.txt").read_bytes() == src.read_bytes()
    back = cluster.tmp / "back.txt"
    rc, _, err = await cluster.kubectl("cp", f"p:{pod_dir}/copied.txt", str(back))
    assert rc == 0, err
    assert back.read_bytes() == src.read_bytes()


async def _fetch(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    body = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return body


@pytest.mark.parametrize("env", [{}, SPDY_PORT_FORWARD], ids=["websocket", "spdy"])
async def test_kubectl_port_forward(cluster: Cluster, echo_server: int, env: dict[str, str]) -> None:
    local = free_port()
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "port-forward", "pod/p", f"{local}:{echo_server}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**cluster.env, **env},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"Forwarding from 127.0.0.1" in line, line
        for i in range(3):  # several connections over the one session
            body = await _fetch(local, f"/hello/{i}")
            assert body.endswith(f"echo: GET /hello/{i} HTTP/1.0".encode()), body
    finally:
        proc.terminate()
        await proc.wait()
    assert proc.stderr is not None
    assert b"error" not in await proc.stderr.read()


async def test_python_client_exec(cluster: Cluster) -> None:
    api = cluster.python_client()
    from kubernetes.stream import stream

    def run() -> tuple[str, str, int | None]:
        out = stream(api.connect_get_namespaced_pod_exec, "p", "default",
                     command=["sh", "-c", "for i in 1 2 3; do echo $i; done"], stderr=True, stdin=False, stdout=True, tty=False)
        ws = stream(api.connect_get_namespaced_pod_exec, "p", "default", command=["sh", "-c", "cat; exit 7"],
                    stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
        ws.write_stdin("from python\n")
        ws.close_channel(0)  # v5: end stdin without closing the socket
        ws.run_forever(timeout=10)
        echoed = ws.read_stdout()
        ws.close()
        return out, echoed, ws.returncode

    out, echoed, code = await asyncio.to_thread(run)
    assert out == "1\n2\n3\n"
    assert echoed == "from python\n"
    assert code == 7


async def test_python_client_exec_tty_and_resize(cluster: Cluster) -> None:
    api = cluster.python_client()
    from kubernetes.stream import stream

    def run() -> tuple[str, int | None]:
        ws = stream(api.connect_get_namespaced_pod_exec, "p", "default", command=["sh", "-c", "sleep 0.5; stty size"],
                    stderr=True, stdin=True, stdout=True, tty=True, _preload_content=False)
        ws.write_channel(4, '{"Width":91,"Height":17}')
        ws.run_forever(timeout=10)
        out = ws.read_stdout()
        ws.close()
        return out, ws.returncode

    out, code = await asyncio.to_thread(run)
    assert out.strip() == "17 91"
    assert code == 0


async def test_python_client_port_forward(cluster: Cluster, echo_server: int) -> None:
    api = cluster.python_client()
    from kubernetes.stream import portforward

    def run() -> bytes:
        pf = portforward(api.connect_get_namespaced_pod_portforward, "p", "default", ports=str(echo_server))
        sock = pf.socket(echo_server)
        sock.settimeout(10)
        sock.sendall(b"GET /py HTTP/1.0\r\n\r\n")
        chunks = []
        while data := sock.recv(4096):
            chunks.append(data)
        sock.close()
        assert pf.error(echo_server) is None
        return b"".join(chunks)

    body = await asyncio.to_thread(run)
    assert body.endswith(b"echo: GET /py HTTP/1.0")


async def test_python_client_port_forward_refused(cluster: Cluster) -> None:
    api = cluster.python_client()
    from kubernetes.stream import portforward
    closed = free_port()

    def run() -> str | None:
        pf = portforward(api.connect_get_namespaced_pod_portforward, "p", "default", ports=str(closed))
        sock = pf.socket(closed)
        sock.settimeout(10)
        assert sock.recv(10) == b""
        sock.close()
        pf.close()
        return pf.error(closed)

    error = await asyncio.to_thread(run)
    assert error and f"error forwarding port {closed}" in error

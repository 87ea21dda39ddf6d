"""Exec, attach, port-forward and logs of pods on remote agents, like the kubelet's port 10250.

The agent side (``AgentEndpoint``) serves HTTPS with a certificate the cluster CA signed for
its node (``CN=system:node:<name>``, see servingcert.py); requests must carry the cluster's
join token, which both ends know. The API server side (``RemoteNodeStreams``) verifies that
certificate against the cluster CA and the node's name when it connects, so neither end
trusts the network. The internal protocol is a WebSocket per session using the channel bytes of
``*.channel.k8s.io`` (0 stdin, 1 stdout, 2 stderr, 3 result JSON, 4 resize, 255 close stdin);
logs are a plain chunked HTTP body.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sampan.apiserver.streaming.backend import StreamError, StreamIO, send_chunks
from sampan.apiserver.streaming.wschannel import CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, ResizeQueue
from sampan.client.interface import NODES
from sampan.node import servingcert
from sampan.node.lazyserve import LazyServer, lazy, middleware
from sampan.node.streams import AgentStreams, LogError, LogOptions

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import WSMsgType, web

    from sampan.client.informer import Informer
    from sampan.node.agent import NodeAgent
else:  # loaded on first use: an idle node agent does without aiohttp (~12 MB, see lazyserve.py)
    aiohttp, web, WSMsgType = lazy("aiohttp"), lazy("aiohttp.web"), lazy("aiohttp", "WSMsgType")

log = logging.getLogger(__name__)
Obj = dict[str, Any]
# Marks nodes with an endpoint, so the API server watches only those (not every simulated node).
ENDPOINT_LABEL = "sampan.dev/stream-endpoint"
DEFAULT_PORT = 10250
_LOG_FIELDS = ("follow", "previous", "timestamps")
_LOG_INTS = ("tail_lines", "since_seconds", "limit_bytes")


# -- the agent's end ---------------------------------------------------------------------------
class AgentEndpoint:
    def __init__(self, agent: NodeAgent, token: str, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> None:
        self.agent = agent
        self.token = token
        self.host, self.port = host, port
        self.streams = AgentStreams(agent)
        self.cert: servingcert.ServingCert | None = None
        self._ctx: ssl.SSLContext | None = None
        self._renewal: asyncio.Task[None] | None = None
        self._server: LazyServer | None = None

    @property
    def _cert_dir(self) -> Path:
        return self.agent.data_dir / "agent" / "serving"

    @property
    def _names(self) -> list[str]:
        return [self.agent.node_name, self.agent.node_ip]  # what the server checks and dials

    async def start(self) -> None:
        """Gets its certificate signed, serves, then tells the node status where (set before the agent registers)."""
        self.cert = await servingcert.ensure(self.agent.client, self._cert_dir, self.agent.node_name, self._names)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert.cert_path), str(self.cert.key_path))
        self._ctx = ctx
        self._server = LazyServer(self._make_runner, self.host, self.port, ctx)  # aiohttp on the first session
        self.port = await self._server.start()
        self.agent.kubelet_port = self.port  # type: ignore[attr-defined]
        self.agent.node_labels = {ENDPOINT_LABEL: "true"}  # type: ignore[attr-defined]
        self._renewal = asyncio.create_task(self._renew(), name="serving certificate renewal")

    async def _make_runner(self) -> web.AppRunner:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/exec/{namespace}/{name}", self._exec)
        app.router.add_get("/attach/{namespace}/{name}", self._exec)
        app.router.add_get("/portforward/{namespace}/{name}", self._portforward)
        app.router.add_get("/logs/{namespace}/{name}", self._logs)
        app.router.add_get("/metrics/resource", self._resource_metrics)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        return runner

    async def _renew(self) -> None:
        """Before the certificate runs out: a new key and certificate, used by new connections."""
        while True:
            assert self.cert is not None and self._ctx is not None
            wait = (self.cert.renew_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, 3600.0))  # re-checked hourly: the wall clock may jump
                continue
            try:
                self.cert = await servingcert.request_certificate(self.agent.client, self._cert_dir,
                                                                  self.agent.node_name, self._names)
                self._ctx.load_cert_chain(str(self.cert.cert_path), str(self.cert.key_path))
            except Exception as exc:  # noqa: BLE001 - the current one is still valid: try again later
                log.warning("renewing the serving certificate failed: %s", exc)
                await asyncio.sleep(servingcert.RETRY_SECONDS)

    async def stop(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            await asyncio.gather(self._renewal, return_exceptions=True)
            self._renewal = None
        if self._server is not None:
            await self._server.stop()
            self._server = None

    @middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return web.Response(status=401, text="Unauthorized")
        return await handler(request)  # type: ignore[no-any-return]

    async def _resource_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.streams.resource_metrics()), content_type="application/json")

    def _pod(self, request: web.Request) -> Obj:
        ns, name, uid = request.match_info["namespace"], request.match_info["name"], request.query.get("uid", "")
        for worker in list(self.agent.workers.values()):
            m = worker.pod.get("metadata") or {}
            if m.get("namespace") == ns and m.get("name") == name and (not uid or m.get("uid") == uid):
                return worker.pod
        raise StreamError(f'pod "{name}" is not running on node {self.agent.node_name}')

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=0)
        await ws.prepare(request)
        q = request.query
        stdin = asyncio.StreamReader() if q.get("stdin") == "1" else None
        resize = ResizeQueue()

        async def out(channel: int, data: bytes) -> None:
            with contextlib.suppress(ConnectionError):
                await ws.send_bytes(bytes((channel,)) + data)

        io = StreamIO(stdin, (lambda b: out(STDOUT, b)) if q.get("stdout") == "1" else None,
                      (lambda b: out(STDERR, b)) if q.get("stderr") == "1" else None, q.get("tty") == "1", resize)

        async def read() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, payload = msg.data[0], msg.data[1:]
                if channel == STDIN and stdin is not None:
                    stdin.feed_data(payload)
                elif channel == CLOSE and stdin is not None:
                    stdin.feed_eof()
                elif channel == RESIZE:
                    resize.push_json(payload)
            if stdin is not None:
                stdin.feed_eof()

        reader = asyncio.create_task(read())
        try:
            pod = self._pod(request)
            container = q.get("container", "")
            if request.path.startswith("/attach/"):
                code = await self.streams.attach(pod, container, io)
            else:
                code = await self.streams.exec(pod, container, q.getall("command", []), io)
            result: Obj = {"exitCode": code}
        except StreamError as exc:
            result = {"error": str(exc)}
        finally:
            resize.end()
        await out(ERROR, orjson.dumps(result))
        reader.cancel()
        await ws.close()
        return ws

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=0)
        await ws.prepare(request)
        try:
            reader, writer = await self.streams.port_forward(self._pod(request), int(request.query.get("port", "0")))
        except (StreamError, ValueError) as exc:
            await ws.send_str(str(exc))
            await ws.close()
            return ws
        await ws.send_str("")  # connected
        await _splice(ws, reader, writer)
        return ws

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            opts = LogOptions(container=q.get("container", ""),
                              **{f: q.get(f) == "1" for f in _LOG_FIELDS},
                              **{f: int(q[f]) for f in _LOG_INTS if q.get(f)},
                              since_time=q.get("since_time") or None)
            chunks = self.streams.logs(self._pod(request), opts)
            first = await anext(chunks, None)
        except (LogError, StreamError, ValueError) as exc:
            return web.Response(status=400, text=str(exc))
        return await send_chunks(request, first, chunks, "application/octet-stream")


async def _splice(ws: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copies bytes both ways between a WebSocket (binary frames) and a stream until either ends."""

    async def to_ws() -> None:
        while chunk := await reader.read(64 * 1024):
            await ws.send_bytes(chunk)

    async def from_ws() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                writer.write(msg.data)
                await writer.drain()
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break

    tasks = [asyncio.create_task(to_ws()), asyncio.create_task(from_ws())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await ws.close()


# -- the API server's end ----------------------------------------------------------------------
def _dial_error(url: str, exc: Exception) -> StreamError:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        why = (f"its serving certificate is not one the cluster CA issued for this node ({exc.certificate_error}); "
               "agents from before CA-signed serving certificates must be restarted with this version")
    elif isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status == 401:
        why = "the node agent refused the join token"
    else:
        why = str(exc) or type(exc).__name__
    return StreamError(f"error dialing the node agent at {url}: {why}")


def _endpoint(node: Obj) -> tuple[str, str]:
    """Base URL of a node's agent endpoint and the name its certificate must carry.

    Checking the node's name (a DNS name the CA puts only in that node's certificate) rather
    than the address dialled binds the endpoint to the Node, whatever its status says."""
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname") or node["metadata"]["name"]
    port = int(((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or DEFAULT_PORT)
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}", node["metadata"]["name"]


class RemoteNodeStreams:
    """Stream backend for every node whose agent publishes an endpoint (via a Node informer)."""

    def __init__(self, client: Any, token: str, ca_file: Path | str | None = None) -> None:
        self.client = client
        self.token = token
        # Agents' certificates are checked against the cluster CA only (no CA: the system's, which never issue them).
        self._tls = ssl.create_default_context(cafile=str(ca_file)) if ca_file else ssl.create_default_context()
        self._tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self._nodes: Informer | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        from sampan.client.informer import Informer

        self._nodes = Informer(self.client, NODES, label_selector=ENDPOINT_LABEL)
        self._nodes.start()
        await self._nodes.wait_for_sync(10)

    async def stop(self) -> None:
        if self._nodes is not None:
            await self._nodes.stop()
        if self._session is not None:
            await self._session.close()

    def _node(self, pod: Obj) -> Obj | None:
        name = (pod.get("spec") or {}).get("nodeName", "")
        node = self._nodes.get_by_name(name) if self._nodes is not None and name else None
        if node is None or ENDPOINT_LABEL not in ((node.get("metadata") or {}).get("labels") or {}):
            return None
        return node

    def serves(self, pod: Obj) -> bool:
        return self._node(pod) is not None

    def _target(self, pod: Obj, kind: str) -> tuple[str, str]:
        node = self._node(pod)
        if node is None:
            raise StreamError(f"no node agent is serving node {(pod.get('spec') or {}).get('nodeName', '')}")
        base, name = _endpoint(node)
        m = pod["metadata"]
        return f"{base}/{kind}/{m.get('namespace', '')}/{m['name']}", name

    async def resource_metrics(self, skip: frozenset[str] | set[str] = frozenset()) -> list[Obj]:
        """Usage snapshots of the remote agents (those that do not answer are left out)."""
        nodes = [n for n in (self._nodes.list() if self._nodes is not None else [])
                 if n["metadata"]["name"] not in skip
                 and ENDPOINT_LABEL in ((n["metadata"].get("labels")) or {})]

        async def one(node: Obj) -> Obj | None:
            base, name = _endpoint(node)
            try:
                async with self.session.get(f"{base}/metrics/resource", ssl=self._tls, server_hostname=name,
                                            timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    return await resp.json(loads=orjson.loads) if resp.status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                return None

        return [r for r in await asyncio.gather(*(one(n) for n in nodes)) if isinstance(r, dict)]

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})
        return self._session

    async def _connect(self, pod: Obj, kind: str, params: list[tuple[str, str]]) -> aiohttp.ClientWebSocketResponse:
        url, name = self._target(pod, kind)
        params = [("uid", pod["metadata"].get("uid", "")), *params]
        try:
            return await self.session.ws_connect(url, params=params, ssl=self._tls, server_hostname=name,
                                                 heartbeat=30.0, max_msg_size=0)
        except (aiohttp.ClientError, OSError) as exc:
            raise _dial_error(url, exc) from exc

    async def exec(self, pod: Obj, container: str, command: list[str], io: StreamIO) -> int:
        flags = [("container", container), ("stdin", "1" if io.stdin else ""), ("stdout", "1" if io.stdout else ""),
                 ("stderr", "1" if io.stderr else ""), ("tty", "1" if io.tty else "")]
        return await self._session_run(pod, "exec", [*flags, *(("command", c) for c in command)], io)

    async def attach(self, pod: Obj, container: str, io: StreamIO) -> int:
        flags = [("container", container), ("stdin", "1" if io.stdin else ""), ("stdout", "1" if io.stdout else ""),
                 ("stderr", "1" if io.stderr else ""), ("tty", "1" if io.tty else "")]
        return await self._session_run(pod, "attach", flags, io)

    async def _session_run(self, pod: Obj, kind: str, params: list[tuple[str, str]], io: StreamIO) -> int:
        ws = await self._connect(pod, kind, params)

        async def send_input() -> None:
            if io.stdin is not None:
                while chunk := await io.stdin.read(32 * 1024):
                    await ws.send_bytes(bytes((STDIN,)) + chunk)
                await ws.send_bytes(bytes((CLOSE, STDIN)))

        async def send_sizes() -> None:
            if io.resize is not None:
                async for width, height in io.resize:
                    await ws.send_bytes(bytes((RESIZE,)) + orjson.dumps({"Width": width, "Height": height}))

        tasks = [asyncio.create_task(send_input()), asyncio.create_task(send_sizes())]
        result: Obj = {"error": "the node agent closed the session"}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, payload = msg.data[0], msg.data[1:]
                if channel == STDOUT and io.stdout is not None:
                    await io.stdout(payload)
                elif channel == STDERR and io.stderr is not None:
                    await io.stderr(payload)
                elif channel == ERROR:
                    result = orjson.loads(payload)
                    break
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()
        if "error" in result:
            raise StreamError(str(result["error"]))
        return int(result.get("exitCode", 0))

    async def port_forward(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ws = await self._connect(pod, "portforward", [("port", str(port))])
        first = await ws.receive()
        if first.type != WSMsgType.TEXT or first.data:
            await ws.close()
            raise StreamError(first.data if first.type == WSMsgType.TEXT else "the node agent closed the stream")
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=theirs)
        task = asyncio.create_task(_splice(ws, reader, writer))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.open_connection(sock=ours)

    async def logs(self, pod: Obj, opts: LogOptions) -> AsyncIterator[bytes]:
        url, name = self._target(pod, "logs")
        params = [("uid", pod["metadata"].get("uid", "")), ("container", opts.container),
                  *((f, "1") for f in _LOG_FIELDS if getattr(opts, f)),
                  *((f, str(getattr(opts, f))) for f in _LOG_INTS if getattr(opts, f) is not None)]
        if opts.since_time:
            params.append(("since_time", opts.since_time))
        try:
            resp = await self.session.get(url, params=params, ssl=self._tls, server_hostname=name,
                                          timeout=aiohttp.ClientTimeout(total=None))
        except (aiohttp.ClientError, OSError) as exc:
            raise _dial_error(url, exc) from exc
        async with resp:
            if resp.status != 200:
                raise LogError(await resp.text())
            async for chunk in resp.content.iter_any():
                yield chunk

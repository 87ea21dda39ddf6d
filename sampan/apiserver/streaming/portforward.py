"""Port-forward in the two shapes clients speak.

kubectl: a SPDY/3.1 session (inside a WebSocket offered as `SPDY/3.1+portforward.k8s.io`,
or over a raw `Upgrade: SPDY/3.1` connection). For every local TCP connection it opens an
`error` stream and a `data` stream sharing a `requestid` and naming the `port`.

Python clients: the WebSocket channel protocol with `?ports=a,b`; port i uses channel 2i
for data and 2i+1 for errors, and the server starts each channel with the port number as
two little-endian bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

from aiohttp import web

from sampan.api import errors
from sampan.apiserver.streaming import spdy, wschannel
from sampan.apiserver.streaming.backend import StreamBackend, StreamError
from sampan.apiserver.streaming.upgrade import PORTFORWARD_PROTOCOL, WebSocketTunnel, accept_spdy

log = logging.getLogger(__name__)
SPDY_WS_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
PAIR_WAIT_SECONDS = 30.0  # upstream waits this long for the second stream of a pair
CHUNK = 32 * 1024


def _pod_name(pod: dict) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _forward_error(pod: dict, port: int, exc: Exception) -> str:
    uid = pod.get("metadata", {}).get("uid", "")
    return f"error forwarding port {port} to pod {_pod_name(pod)}, uid {uid}: {exc}"


def _parse_port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise errors.bad_request(f'unable to parse "{value}" as a port: invalid syntax') from None
    if not 0 < port < 65536:
        raise errors.bad_request(f"port {port} must be > 0 and < 65536")
    return port


# -- SPDY (kubectl) --------------------------------------------------------------------------

class _Pairing:
    """Matches each request's error and data streams, then forwards the port."""

    def __init__(self, session_ref: list[spdy.SpdySession], pod: dict, backend: StreamBackend) -> None:
        self._session = session_ref
        self.pod = pod
        self.backend = backend
        self.pending: dict[str, dict[str, spdy.Stream]] = {}

    async def on_stream(self, stream: spdy.Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        request_id = stream.headers.get("requestid", "")
        if kind not in ("error", "data"):
            await stream.reset(spdy.RST_REFUSED_STREAM)
            return
        await stream.reply()
        pair = self.pending.setdefault(request_id, {})
        if kind in pair:
            await stream.reset(spdy.RST_PROTOCOL_ERROR)
            return
        pair[kind] = stream
        if len(pair) == 2:
            del self.pending[request_id]
            await self._forward(pair["data"], pair["error"])
        else:
            self._session[0].spawn(self._expire(request_id))

    async def _expire(self, request_id: str) -> None:
        await asyncio.sleep(PAIR_WAIT_SECONDS)
        for stream in self.pending.pop(request_id, {}).values():
            await stream.reset()

    async def _forward(self, data: spdy.Stream, error: spdy.Stream) -> None:
        try:
            port = _parse_port(data.headers.get("port", ""))
            reader, writer = await self.backend.port_forward(self.pod, port)
        except (errors.APIError, StreamError) as exc:
            if isinstance(exc, errors.APIError):
                message = exc.status["message"]
            else:
                message = _forward_error(self.pod, port, exc)
            await error.write(message.encode())
            await error.close()
            await data.close()
            return
        try:
            await asyncio.gather(_stream_to_socket(data, writer), _socket_to_stream(reader, data))
        finally:
            writer.close()
            await error.close()


async def _stream_to_socket(stream: spdy.Stream, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await stream.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # the client closed its side: pass the half-close on


async def _socket_to_stream(reader: asyncio.StreamReader, stream: spdy.Stream) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK):
            await stream.write(chunk)
    await stream.close()


async def serve_spdy_websocket(request: web.Request, pod: dict, backend: StreamBackend) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=(SPDY_WS_PROTOCOL,), max_msg_size=0)
    await ws.prepare(request)
    session_ref: list[spdy.SpdySession] = []
    pairing = _Pairing(session_ref, pod, backend)
    session_ref.append(spdy.SpdySession(WebSocketTunnel(ws), pairing.on_stream))
    await session_ref[0].run()
    return ws


async def serve_spdy_upgrade(request: web.Request, pod: dict, backend: StreamBackend) -> web.StreamResponse:
    session_ref: list[spdy.SpdySession] = []
    pairing = _Pairing(session_ref, pod, backend)
    resp, _, session = await accept_spdy(request, (PORTFORWARD_PROTOCOL,), pairing.on_stream)
    session_ref.append(session)
    await session.run()
    return resp


# -- WebSocket channels (Python clients) -----------------------------------------------------

def parse_ports(request: web.Request) -> list[int]:
    values = request.query.getall("ports", []) + request.query.getall("port", [])
    ports = [_parse_port(v.strip()) for value in values for v in value.split(",") if v.strip()]
    if not ports:
        raise errors.bad_request('query parameter "port" is required')
    return ports


async def serve_channels(request: web.Request, pod: dict, backend: StreamBackend) -> web.StreamResponse:
    ports = parse_ports(request)
    conn = await wschannel.ChannelConn.accept(request, (wschannel.V4, wschannel.V1))
    writers: dict[int, asyncio.StreamWriter] = {}
    pumps = []
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await conn.send(2 * i, prefix)
        await conn.send(2 * i + 1, prefix)
        try:
            reader, writers[i] = await backend.port_forward(pod, port)
        except StreamError as exc:
            await conn.send(2 * i + 1, _forward_error(pod, port, exc).encode())
            continue
        pumps.append(asyncio.create_task(_socket_to_channel(reader, conn, 2 * i)))
    client = asyncio.create_task(_channels_to_sockets(conn, writers))
    try:
        # Done when every target closed (or none could be reached), or the client left.
        targets = asyncio.gather(*pumps)
        await asyncio.wait({client, targets}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        client.cancel()
        for task in pumps:
            task.cancel()
        for writer in writers.values():
            writer.close()
        await conn.close()
    return conn.ws


async def _socket_to_channel(reader: asyncio.StreamReader, conn: wschannel.ChannelConn, channel: int) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK):
            await conn.send(channel, chunk)


async def _channels_to_sockets(conn: wschannel.ChannelConn, writers: dict[int, asyncio.StreamWriter]) -> None:
    async for channel, payload in conn.messages():
        writer = writers.get(channel // 2) if channel % 2 == 0 else None
        if writer is None or not payload or writer.is_closing():
            continue
        try:
            writer.write(payload)
            await writer.drain()
        except ConnectionError:
            writer.close()

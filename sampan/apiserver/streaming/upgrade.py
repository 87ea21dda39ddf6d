"""Byte transports for SPDY sessions: a raw `Upgrade: SPDY/3.1` HTTP connection taken
over from aiohttp, or a WebSocket whose binary messages carry the SPDY byte stream."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from sampan.api import errors
from sampan.apiserver.streaming import spdy, wschannel

SPDY_EXEC_PROTOCOLS = (wschannel.V4, wschannel.V3, wschannel.V2, wschannel.V1)
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
_WRITE_HIGH_WATER = 256 * 1024


def wants_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/3.1")


def wants_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def negotiate(request: web.Request, supported: tuple[str, ...]) -> str:
    offered = [p.strip() for h in request.headers.getall("X-Stream-Protocol-Version", []) for p in h.split(",")]
    for proto in supported:
        if proto in offered:
            return proto
    raise errors.APIError(errors.status_object(
        403, "Forbidden",
        f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server supports {list(supported)}",
    ))


class _Incoming:
    """Stands in for aiohttp's payload parser: queues whatever the client sends."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


class RawTransport:
    """The TCP (or TLS) connection of an upgraded HTTP request."""

    def __init__(self, request: web.Request, incoming: _Incoming) -> None:
        self._request = request
        self._incoming = incoming
        self._eof = False

    async def recv(self) -> bytes:
        if self._eof:
            return b""
        data = await self._incoming.queue.get()
        self._eof = not data
        return data

    async def send(self, data: bytes) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection lost")
        transport.write(data)
        if transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            await self._request.protocol._drain_helper()

    async def close(self) -> None:
        pass  # aiohttp closes the connection when the handler returns


async def accept_spdy(
    request: web.Request, protocols: tuple[str, ...], on_stream: spdy.StreamHandler
) -> tuple[web.StreamResponse, str, spdy.SpdySession]:
    """Answer 101 Switching Protocols and return a SPDY session over the connection."""
    protocol = negotiate(request, protocols)
    resp = web.StreamResponse(
        status=101,
        headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": protocol},
    )
    resp.force_close()
    await resp.prepare(request)
    incoming = _Incoming()
    request.protocol.set_parser(incoming)  # type: ignore[arg-type]
    return resp, protocol, spdy.SpdySession(RawTransport(request, incoming), on_stream)


class WebSocketTunnel:
    """SPDY bytes inside binary WebSocket messages (kubectl's port-forward tunnel)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return msg.data
            elif msg.type == WSMsgType.TEXT:
                if msg.data:
                    return msg.data.encode()
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return b""

    async def send(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("websocket closed")
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        if not self.ws.closed:
            try:
                await self.ws.close()
            except ConnectionError:
                pass

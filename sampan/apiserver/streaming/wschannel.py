"""The Kubernetes WebSocket channel protocol (`*.channel.k8s.io`).

Every binary message is `[channel byte][payload]`. For exec/attach: 0 stdin, 1 stdout,
2 stderr, 3 error (a Status JSON from v4 on, plain text before), 4 terminal resize JSON.
v5 adds a close signal `[255, channel]` so a client can end stdin without closing the socket.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator

import orjson

from sampan.api import errors

if TYPE_CHECKING:
    from aiohttp import web

# aiohttp is imported where a session starts: a node agent imports this module's constants
# and ResizeQueue without needing aiohttp until its first exec/attach.

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
# Preference order when a client offers several.
EXEC_PROTOCOLS = (V5, V4, V3, V2, V1)
HEARTBEAT_SECONDS = 30.0  # clients ping every 5 s; we ping too so dead peers are noticed


def status_success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def status_exit_code(code: int, command: list[str]) -> dict[str, Any]:
    """The Status a non-zero exit produces; clients read the code from the ExitCode cause."""
    message = (
        f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {code}"
    )
    details = {"causes": [{"reason": "ExitCode", "message": str(code)}]}
    status = errors.status_object(0, "NonZeroExitCode", message, details)
    del status["code"]
    return status


def status_internal(message: str) -> dict[str, Any]:
    return errors.status_object(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )


def select_protocol(request: web.Request, supported: tuple[str, ...]) -> str | None:
    """Pick our preferred protocol among those offered; None if the client offered none."""
    offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")]
    offered = [p for p in offered if p]
    if not offered:
        return None
    for proto in supported:
        if proto in offered:
            return proto
    return ""


class ChannelConn:
    """A WebSocket carrying the channel protocol."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.protocol = ws.ws_protocol or ""
        self.is_v5 = self.protocol == V5
        self.status_json = self.protocol in (V4, V5)

    @classmethod
    async def accept(cls, request: web.Request, protocols: tuple[str, ...]) -> ChannelConn:
        from aiohttp import web

        ws = web.WebSocketResponse(protocols=protocols, heartbeat=HEARTBEAT_SECONDS, max_msg_size=0)
        await ws.prepare(request)
        return cls(ws)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, channel: int, data: bytes) -> None:
        if not self.ws.closed:
            try:
                await self.ws.send_bytes(bytes((channel,)) + data)
            except ConnectionError:
                pass

    async def send_status(self, status: dict[str, Any]) -> None:
        """Report how the session ended on the error channel."""
        if self.status_json:
            await self.send(ERROR, orjson.dumps(status))
        elif status.get("status") != "Success":
            await self.send(ERROR, str(status.get("message", "")).encode())

    async def messages(self) -> AsyncIterator[tuple[int, bytes]]:
        """(channel, payload) pairs from the client until it closes; pings are answered for us."""
        from aiohttp import WSMsgType

        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY and msg.data:
                yield msg.data[0], msg.data[1:]
            elif msg.type == WSMsgType.TEXT and msg.data:
                data = msg.data.encode()
                yield data[0], data[1:]
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return

    async def close(self) -> None:
        if not self.ws.closed:
            try:
                await self.ws.close()
            except ConnectionError:
                pass


class ResizeQueue:
    """Terminal sizes from the client as an async iterator of (width, height)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()

    def push_json(self, payload: bytes) -> None:
        try:
            size = orjson.loads(payload)
            self._queue.put_nowait((int(size.get("Width", 0)), int(size.get("Height", 0))))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            pass  # a malformed resize is not worth ending the session for

    def end(self) -> None:
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[tuple[int, int]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[int, int]]:
        while (size := await self._queue.get()) is not None:
            yield size

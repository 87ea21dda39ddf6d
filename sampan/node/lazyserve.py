"""aiohttp for a node agent, loaded when first needed.

aiohttp (with multidict, yarl, attrs, email ...) costs a node agent about 12 MB of resident
memory, a quarter of it when idle, while it only needs it for exec/attach/port-forward/logs
sessions, image pulls and HTTP probes. ``lazy`` stands in for a module until an attribute is
used; ``LazyServer`` listens right away (the port is published on the Node) and builds the
aiohttp application when the first connection arrives, then hands that connection and all
later ones to aiohttp's protocol, as ``web.TCPSite`` would.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any


class lazy:  # noqa: N801 - stands in for a module or a module's attribute
    def __init__(self, module: str, attr: str | None = None) -> None:
        self._module, self._attr = module, attr
        self._target: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._target is None:
            target = importlib.import_module(self._module)
            self._target = getattr(target, self._attr) if self._attr else target
        return getattr(self._target, name)


def middleware(f: Any) -> Any:
    """What ``aiohttp.web.middleware`` does (marks a new-style middleware), without importing it."""
    f.__middleware_version__ = 1
    return f


class _Pending(asyncio.Protocol):
    """A connection that arrived before the application was built: buffered until it is."""

    def __init__(self, server: LazyServer) -> None:
        self.server = server
        self.transport: asyncio.BaseTransport | None = None
        self.buffered: list[bytes] = []
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        task = asyncio.ensure_future(self.server.ready())
        task.add_done_callback(self._hand_over)

    def data_received(self, data: bytes) -> None:
        self.buffered.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def _hand_over(self, task: asyncio.Future[Any]) -> None:
        transport = self.transport
        if self.lost or transport is None:
            return
        if task.cancelled() or task.exception() is not None:
            transport.close()
            return
        proto = task.result().server()  # aiohttp's protocol for one connection
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if self.buffered:
            proto.data_received(b"".join(self.buffered))
        if self.eof:
            proto.eof_received()


class LazyServer:
    """Listens on (host, port) with TLS; ``make_runner`` builds and sets up an aiohttp
    ``AppRunner`` once, on the first connection."""

    def __init__(self, make_runner: Callable[[], Awaitable[Any]], host: str, port: int,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.make_runner = make_runner
        self.host, self.port, self.ssl_context = host, port, ssl_context
        self.runner: Any = None
        self._building: asyncio.Task[Any] | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listens; returns the port (a free one for port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port, ssl=self.ssl_context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def _protocol(self) -> asyncio.BaseProtocol:
        if self.runner is not None:
            return self.runner.server()  # type: ignore[no-any-return]
        return _Pending(self)

    async def ready(self) -> Any:
        if self.runner is None:
            if self._building is None:
                self._building = asyncio.ensure_future(self.make_runner())
            self.runner = await asyncio.shield(self._building)
        return self.runner

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._building is not None and not self._building.done():
            self._building.cancel()
        if self.runner is not None:
            await self.runner.cleanup()  # closes its open connections (sessions end)
            self.runner = None

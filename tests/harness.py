"""Helpers shared by the test packages: an in-process registry on the memory store (the same
admission, validation and defaulting as the server), a real in-process server with an HTTP
client, and a polling ``eventually``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sampan.client.http import HttpClient
from sampan.registry.registry import Registry
from sampan.server import RunningServer, ServerOptions, bootstrap, start_server
from sampan.store.memory import MemoryStore


@asynccontextmanager
async def memory_registry(bookmark_interval: float = 0.2, **options: Any) -> AsyncIterator[Registry]:
    """A bootstrapped Registry over a fresh MemoryStore; ``options`` go to Registry."""
    store = MemoryStore()
    await store.start()
    try:
        reg = Registry(store, bookmark_interval=bookmark_interval, **options)
        await bootstrap(reg)
        yield reg
    finally:
        await store.close()


@asynccontextmanager
async def api_server(data_dir: Path, **options: Any) -> AsyncIterator[RunningServer]:
    """A real server in-process on the memory store; no controllers or scheduler unless
    ``options`` (ServerOptions fields) ask for them."""
    merged: dict[str, Any] = {"port": 0, "datastore": "memory", "controllers": [], "scheduler": False, **options}
    running = await start_server(ServerOptions(data_dir=data_dir, **merged))
    try:
        yield running
    finally:
        await running.stop()


@asynccontextmanager
async def http_client(server: RunningServer) -> AsyncIterator[HttpClient]:
    """An HttpClient on the server's kubeconfig, closed afterwards."""
    client = HttpClient.from_kubeconfig(server.kubeconfig)
    try:
        yield client
    finally:
        await client.close()


async def eventually(
    check: Callable[[], Awaitable[Any] | Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    catch: tuple[type[BaseException], ...] = (AssertionError,),
) -> Any:
    """Polls ``check`` (plain or async) until it returns something truthy without raising one of
    ``catch``; returns that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    result: Any = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except catch as exc:
            last = exc
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})") from last
        await asyncio.sleep(interval)


def json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path in a JSON value (the value's own path, ``()``, first)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += json_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += json_paths(v, prefix + (i,))
    return out

"""The gRPC connection behind EtcdStore: endpoint failover, bounded retries, error mapping.

Reads are retried freely. A write is only retried when it provably never left this
process (the channel could not connect); once a write may have reached etcd, a
failure is reported as ``Unavailable`` with the outcome unknown, so a write is never
silently dropped nor applied twice by a blind retry.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from aetcd import rpc

from .interface import Compacted, StoreError, Unavailable

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),  # big lists
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # Reconnect quickly after an etcd restart instead of gRPC's default minute-long backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Notice a dead peer on long-idle watch streams; etcd allows pings every 5s by default.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
]

_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def _never_sent(exc: grpc.aio.AioRpcError) -> bool:
    """True when gRPC failed before handing the request to any server."""
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details


class EtcdConnection:
    def __init__(
        self,
        endpoints: list[str],
        request_timeout: float = 5.0,
        retry_budget: float = 10.0,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self.endpoints = list(endpoints)
        self.request_timeout = request_timeout
        self.retry_budget = retry_budget
        self._index = 0
        self._channel: grpc.aio.Channel | None = None
        self.kv: Any = None
        self.watch_stub: Any = None
        self._closed = False

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._index]

    def describe(self) -> str:
        return "etcd at " + ", ".join(self.endpoints)

    # -- channel management -------------------------------------------------------
    def _use(self, index: int) -> grpc.aio.Channel:
        old = self._channel
        if old is not None:
            # Close in the background; pending calls on it fail and are retried.
            asyncio.get_running_loop().create_task(old.close())
        self._index = index
        self._channel = grpc.aio.insecure_channel(self.endpoint, options=_CHANNEL_OPTIONS)
        self.kv = rpc.KVStub(self._channel)
        self.watch_stub = rpc.WatchStub(self._channel)
        return self._channel

    async def start(self) -> None:
        """Connects to the first endpoint (in order) that answers."""
        await self.ready(asyncio.get_running_loop().time() + self.retry_budget)

    async def ready(self, deadline: float) -> None:
        """Waits until the channel is connected, trying each endpoint in turn."""
        loop = asyncio.get_running_loop()
        delay = 0.05
        while True:
            if self._closed:
                raise Unavailable(f"{self.describe()}: store is closed")
            channel = self._channel or self._use(self._index)
            if channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(f"{self.describe()} is unreachable")
            try:
                await asyncio.wait_for(channel.channel_ready(), min(remaining, max(delay, 0.5)))
                return
            except asyncio.TimeoutError:
                pass
            if len(self.endpoints) > 1:
                self._use((self._index + 1) % len(self.endpoints))
            delay = min(delay * 2, 1.0)

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    # -- calls ----------------------------------------------------------------------
    async def call(self, method: str, request: Any, *, write: bool = False, what: str = "") -> Any:
        """One KV RPC with reconnects and backoff inside the retry budget."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget
        delay = 0.05
        last = ""
        while True:
            await self.ready(deadline)
            endpoint = self.endpoint
            try:
                return await getattr(self.kv, method)(request, timeout=self.request_timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _TRANSIENT:
                    raise map_error(exc, what) from exc
                last = f"{exc.code().name}: {exc.details()}"
                if write and not _never_sent(exc):
                    raise Unavailable(
                        f"etcd at {endpoint} failed during a write to {what!r}; "
                        f"it may or may not have been applied ({last})"
                    ) from exc
            if loop.time() + delay >= deadline:
                raise Unavailable(f"{self.describe()} is unreachable ({last})")
            log.debug("etcd %s failed (%s); retrying in %.2fs", method, last, delay)
            await asyncio.sleep(delay)
            if len(self.endpoints) > 1:
                self._use((self._index + 1) % len(self.endpoints))
            delay = min(delay * 2, 1.0)


def map_error(exc: grpc.aio.AioRpcError, what: str = "") -> StoreError:
    """Turns a non-transient gRPC error into the store's error vocabulary."""
    details = exc.details() or ""
    code = exc.code()
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        # The caller knows the requested revision; it fills in the real numbers.
        return Compacted(0, 0)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Unavailable(f"etcd refused {what!r}: {details}")
    return StoreError(f"etcd error on {what!r}: {code.name}: {details}")

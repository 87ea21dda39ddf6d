"""Exec, attach, port-forward and logs of pods on this node, for the API server's streaming
handlers. ``NodeStreams`` is what the server holds: it sends each pod to the backend of the
node running it (the in-process agent's ``AgentStreams`` here; remote agents' endpoints through
``NodeStreams.remote``, see remote_streams.py)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sampan.apiserver.streaming.backend import StreamError, StreamIO, find_container

if TYPE_CHECKING:
    from sampan.node.agent import NodeAgent

Obj = dict[str, Any]
CLONE_NEWNET = 0x40000000


@dataclass
class LogOptions:
    container: str
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: str | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


class LogError(Exception):
    """Bad request for logs (no such container, not started, no previous container)."""


def parse_cri_line(line: bytes) -> tuple[str, bytes, bool] | None:
    """(timestamp, message, full line?) of one CRI log line."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    ts = parts[0].decode(errors="replace")
    msg = parts[3] if len(parts) == 4 else b""
    return ts, msg, parts[2] != b"P"


def read_log_lines(path: Path, tail: int | None = None) -> list[str]:
    """Messages of a CRI log file (used for FallbackToLogsOnError)."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    out = []
    for raw in data.splitlines():
        parsed = parse_cri_line(raw)
        if parsed:
            out.append(parsed[1].decode(errors="replace") + ("\n" if parsed[2] else ""))
    return out[-tail:] if tail else out


def _since(opts: LogOptions) -> float | None:
    if opts.since_seconds is not None:
        return time.time() - opts.since_seconds
    if opts.since_time:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(opts.since_time.replace("Z", "+00:00")).timestamp()
    return None


def _ts_seconds(ts: str) -> float:
    """RFC 3339 with nanoseconds, ending in "Z" (the shim) or an offset like "+00:00" (conmon)."""
    m = _TS.match(ts)
    with contextlib.suppress(ValueError):
        if m:
            zone = m.group(3) if m.group(3) not in (None, "Z") else "+00:00"
            return datetime.fromisoformat(m.group(1) + zone).timestamp() + float("0." + (m.group(2) or "0"))
    return 0.0


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def _format(ts: str, msg: bytes, full: bool, timestamps: bool) -> bytes:
    out = (ts.encode() + b" " if timestamps else b"") + msg
    return out + (b"\n" if full else b"")


async def stream_log(path: Path, opts: LogOptions, running: Any) -> AsyncIterator[bytes]:
    """Chunks of the log at ``path``; with follow, until ``running()`` says the container ended."""
    since = _since(opts)
    sent = 0

    def lines_of(data: bytes) -> list[bytes]:
        out = []
        for raw in data.splitlines():
            parsed = parse_cri_line(raw)
            if not parsed or (since is not None and _ts_seconds(parsed[0]) < since):
                continue
            out.append(_format(parsed[0], parsed[1], parsed[2], opts.timestamps))
        return out

    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError:
        data = b""
    complete = data[: data.rfind(b"\n") + 1]
    offset = len(complete)
    lines = lines_of(complete)
    if opts.tail_lines is not None:
        lines = lines[-opts.tail_lines:] if opts.tail_lines > 0 else []
    for chunk in lines:
        if opts.limit_bytes is not None:
            chunk = chunk[: max(0, opts.limit_bytes - sent)]
            if not chunk:
                return
        sent += len(chunk)
        yield chunk
    while opts.follow:
        try:
            size = path.stat().st_size
        except OSError:
            size = offset
        if size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                more = f.read(size - offset)
            end = more.rfind(b"\n") + 1
            offset += end
            for chunk in lines_of(more[:end]):
                if opts.limit_bytes is not None:
                    chunk = chunk[: max(0, opts.limit_bytes - sent)]
                    if not chunk:
                        return
                sent += len(chunk)
                yield chunk
            continue
        if not running():
            return
        await asyncio.sleep(0.2)


def _connect_in_netns(netns_path: str, port: int) -> socket.socket:
    """Connects to 127.0.0.1:port inside a network namespace (the socket keeps that netns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[Any] = []

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(netns_path, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns_path}")
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.settimeout(None)
                result.append(sock)
            finally:
                libc.setns(own, CLONE_NEWNET)
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            result.append(exc)
        finally:
            os.close(own)
            os.close(target)

    # A thread of its own: a thread that switched namespaces must never run anything else.
    thread = threading.Thread(target=work, name="port-forward", daemon=True)
    thread.start()
    thread.join()
    if isinstance(result[0], Exception):
        raise result[0]
    return result[0]


class AgentStreams:
    """StreamBackend over the agent's runtime."""

    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    def _tracked(self, pod: Obj, container: str) -> Any:
        worker = self.agent.workers.get(pod["metadata"].get("uid", ""))
        t = worker.tracked(container) if worker else None
        if t is None or t.id is None or not t.running:
            raise StreamError(f"container {container} not found in pod {pod['metadata'].get('name')}")
        return t

    async def exec(self, pod: Obj, container: str, command: list[str], io: StreamIO) -> int:
        find_container(pod, container)
        if not command:
            raise StreamError("command is required")
        return int(await self.agent.runtime.exec(self._tracked(pod, container).id, command, io))

    async def attach(self, pod: Obj, container: str, io: StreamIO) -> int:
        find_container(pod, container)
        return int(await self.agent.runtime.attach(self._tracked(pod, container).id, io))

    async def port_forward(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        uid = pod["metadata"].get("uid", "")
        try:
            if (pod.get("spec") or {}).get("hostNetwork") or self.agent.network is None:
                return await asyncio.open_connection("127.0.0.1", port)
            netns = self.agent.network.netns_path(uid)
            sock = await asyncio.to_thread(_connect_in_netns, netns, port)
        except OSError as exc:
            raise StreamError(f"failed to connect to localhost:{port} inside namespace of pod "
                              f"{pod['metadata'].get('name')}: {exc.strerror or exc}") from exc
        return await asyncio.open_connection(sock=sock)

    def log_source(self, pod: Obj, opts: LogOptions) -> tuple[Path, Any]:
        """The log file to read, and a callable telling whether its container still runs."""
        from sampan.node.containers import log_path

        name = pod["metadata"].get("name")
        worker = self.agent.workers.get(pod["metadata"].get("uid", ""))
        t = worker.tracked(opts.container) if worker else None
        if worker is None or t is None:
            raise LogError(f'container "{opts.container}" in pod "{name}" is not available')
        if opts.previous:
            if t.restart_count == 0 and not t.last_terminated:
                raise LogError(f'previous terminated container "{opts.container}" in pod "{name}" not found')
            attempt = t.restart_count - 1 if t.id else t.restart_count
            return log_path(worker, t.name, max(0, attempt)), lambda: False
        if t.id is None:
            # Not started by this agent (a finished pod after a restart): its newest log file.
            logs = sorted(log_path(worker, t.name, 0).parent.glob("*.log"), key=lambda p: int(p.stem))
            if logs:
                return logs[-1], lambda: False
            raise LogError(f'container "{opts.container}" in pod "{name}" is waiting to start: '
                           f"{t.waiting_reason or 'ContainerCreating'}")
        current = t.id
        return log_path(worker, t.name, t.restart_count), lambda: t.id == current and t.running

    async def logs(self, pod: Obj, opts: LogOptions) -> AsyncIterator[bytes]:
        path, running = self.log_source(pod, opts)
        async for chunk in stream_log(path, opts, running):
            yield chunk

    def resource_metrics(self) -> Obj:
        """The agent's latest usage snapshot (sampan/node/metrics.py)."""
        return dict(self.agent.metrics.snapshot)


class NodeStreams:
    """The API server's stream backend: each pod goes to the backend of its node."""

    def __init__(self) -> None:
        self.backends: dict[str, Any] = {}
        # Nodes without an in-process backend: remote agents' endpoints (sampan/node/remote_streams.py).
        self.remote: Any = None

    def register(self, node: str, backend: Any) -> None:
        self.backends[node] = backend

    def unregister(self, node: str) -> None:
        self.backends.pop(node, None)

    def _for(self, pod: Obj) -> Any:
        node = (pod.get("spec") or {}).get("nodeName", "")
        backend = self.backends.get(node)
        if backend is None and self.remote is not None and self.remote.serves(pod):
            backend = self.remote
        if backend is None:
            raise StreamError(f"no node agent is serving node {node}")
        return backend

    def serves(self, pod: Obj) -> bool:
        if (pod.get("spec") or {}).get("nodeName", "") in self.backends:
            return True
        return self.remote is not None and bool(self.remote.serves(pod))

    async def exec(self, pod: Obj, container: str, command: list[str], io: StreamIO) -> int:
        return int(await self._for(pod).exec(pod, container, command, io))

    async def attach(self, pod: Obj, container: str, io: StreamIO) -> int:
        return int(await self._for(pod).attach(pod, container, io))

    async def port_forward(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await self._for(pod).port_forward(pod, port)  # type: ignore[no-any-return]

    def logs(self, pod: Obj, opts: LogOptions) -> AsyncIterator[bytes]:
        return self._for(pod).logs(pod, opts)  # type: ignore[no-any-return]

    async def resource_metrics(self) -> list[Obj]:
        """Latest usage snapshots of every node's agent, for metrics.k8s.io."""
        out = [b.resource_metrics() for b in self.backends.values() if hasattr(b, "resource_metrics")]
        if self.remote is not None and hasattr(self.remote, "resource_metrics"):
            out += await self.remote.resource_metrics(skip=set(self.backends))
        return out

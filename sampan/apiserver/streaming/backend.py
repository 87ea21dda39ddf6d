"""The protocol-neutral interface between the API server's streaming handlers and whatever
runs a pod (the node agent, or a local process in tests and the `raw` runtime).

The handlers speak the client protocols (WebSocket channels, SPDY) and turn them into a
`StreamIO` plus plain asyncio streams, so a backend never sees a wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import termios
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from sampan.api import errors

# Writes one chunk of output to the client; awaiting it applies back-pressure.
Output = Callable[[bytes], Awaitable[None]]


class StreamError(Exception):
    """The backend could not start the session (no such container, command not found...).

    Reported to the client as a Failure Status (reason InternalError), unlike a command's
    non-zero exit code, which is a normal result.
    """


@dataclass
class StreamIO:
    """The client's side of an exec/attach session.

    stdin: bytes from the client, EOF when the client closes stdin; None if not requested.
    stdout/stderr: where output goes; None if not requested (with a tty, stderr is None
    and the terminal's output all goes to stdout).
    resize: terminal sizes (width, height) as the client reports them; tty only.
    """

    stdin: asyncio.StreamReader | None
    stdout: Output | None
    stderr: Output | None
    tty: bool = False
    resize: AsyncIterator[tuple[int, int]] | None = None


class StreamBackend(Protocol):
    async def exec(self, pod: dict, container: str, command: list[str], io: StreamIO) -> int:
        """Run `command` in the container, wire it to `io`, return its exit code."""

    async def attach(self, pod: dict, container: str, io: StreamIO) -> int:
        """Attach `io` to the container's main process; return its exit code."""

    async def port_forward(self, pod: dict, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a byte stream to `port` in the pod's network namespace."""


def pick_container(pod: dict, requested: str) -> str:
    """The container a logs/exec/attach request means, checked like the API server does: any
    container, init or ephemeral container by name; without a name, the only container."""
    spec, name = pod.get("spec") or {}, (pod.get("metadata") or {}).get("name", "")
    groups = {g: [c.get("name", "") for c in spec.get(g) or []]
              for g in ("containers", "initContainers", "ephemeralContainers")}
    if requested:
        if not any(requested in names for names in groups.values()):
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(groups["containers"]) == 1:
        return groups["containers"][0]
    message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(groups['containers'])}]"
    for group, label in (("initContainers", "init"), ("ephemeralContainers", "ephemeral")):
        if groups[group]:
            message += f" or one of the {label} containers: [{' '.join(groups[group])}]"
    raise errors.bad_request(message)


def find_container(pod: dict, name: str) -> dict:
    spec = pod.get("spec") or {}
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(group) or []:
            if c.get("name") == name:
                return c
    raise StreamError(f'container {name} is not valid for pod {pod.get("metadata", {}).get("name")}')


class LocalProcessBackend:
    """Runs commands as local subprocesses and forwards ports to 127.0.0.1.

    `attach` has no long-running container process to join, so it starts the container's
    `command` + `args` for the session; the raw runtime will attach to the real process.
    """

    def __init__(self, cwd: str | None = None, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = env

    async def exec(self, pod: dict, container: str, command: list[str], io: StreamIO) -> int:
        find_container(pod, container)
        if not command:
            raise StreamError("command is required")
        return await self._run(command, io)

    async def attach(self, pod: dict, container: str, io: StreamIO) -> int:
        spec = find_container(pod, container)
        command = list(spec.get("command") or []) + list(spec.get("args") or [])
        if not command:
            raise StreamError(f"container {container} has no command to run")
        return await self._run(command, io)

    async def port_forward(self, pod: dict, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            raise StreamError(f"failed to connect to localhost:{port}: {exc.strerror or exc}") from exc

    async def _run(self, command: list[str], io: StreamIO) -> int:
        if io.tty:
            return await self._run_pty(command, io)
        pipe = asyncio.subprocess.PIPE
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=pipe if io.stdin else asyncio.subprocess.DEVNULL,
                stdout=pipe if io.stdout else asyncio.subprocess.DEVNULL,
                stderr=pipe if io.stderr else asyncio.subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.env,
            )
        except OSError as exc:
            raise StreamError(f"failed to exec {command[0]!r}: {exc.strerror or exc}") from exc
        feeder = asyncio.create_task(_feed_stdin(io.stdin, proc.stdin)) if io.stdin and proc.stdin else None
        try:
            await asyncio.gather(_pump(proc.stdout, io.stdout), _pump(proc.stderr, io.stderr))
            return await proc.wait()
        finally:
            if feeder:
                feeder.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def _run_pty(self, command: list[str], io: StreamIO) -> int:
        def failed(exc: OSError) -> Exception:
            return StreamError(f"failed to exec {command[0]!r}: {exc.strerror or exc}")

        return await run_in_pty(command, io, failed, cwd=self.cwd, env=self.env)


async def run_in_pty(
    command: list[str],
    io: StreamIO,
    start_error: Callable[[OSError], Exception],
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    signal_resize: bool = False,
) -> int:
    """Runs ``command`` with a new pty as its stdio, copying between it and ``io`` until the
    process side closes; returns the exit code. ``start_error`` makes the error raised when the
    command cannot start. ``signal_resize``: also send SIGWINCH after a resize, for a process
    (like ``runc exec -t``) that relays the size on to a terminal of its own."""
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, start_new_session=True,
        )
    except OSError as exc:
        os.close(master)
        raise start_error(exc) from exc
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    tasks = [asyncio.create_task(_pty_stdin(io.stdin, master))] if io.stdin else []
    if io.resize:
        tasks.append(asyncio.create_task(_pty_resize(io.resize, master, proc if signal_resize else None)))
    try:
        await _pty_output(master, io.stdout)
        return await proc.wait()
    finally:
        for t in tasks:
            t.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)


async def _pump(src: asyncio.StreamReader | None, out: Output | None) -> None:
    if src is None or out is None:
        return
    while chunk := await src.read(32 * 1024):
        await out(chunk)


async def _feed_stdin(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await src.read(32 * 1024):
            dst.write(chunk)
            await dst.drain()
        dst.close()


async def _pty_output(master: int, out: Output | None) -> None:
    """Copy terminal output until the process side of the pty is gone (EIO)."""
    loop = asyncio.get_running_loop()
    while True:
        ready = loop.create_future()
        loop.add_reader(master, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(master)
        try:
            chunk = os.read(master, 32 * 1024)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not chunk:
            return
        if out:
            await out(chunk)


async def _pty_stdin(src: asyncio.StreamReader, master: int) -> None:
    loop = asyncio.get_running_loop()
    while chunk := await src.read(32 * 1024):
        while chunk:
            try:
                n = os.write(master, chunk)
                chunk = chunk[n:]
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(master, lambda: ready.done() or ready.set_result(None))
                try:
                    await ready
                finally:
                    loop.remove_writer(master)
    # Closing stdin on a terminal means sending the EOF character (^D).
    with contextlib.suppress(OSError):
        os.write(master, b"\x04")


async def _pty_resize(
    sizes: AsyncIterator[tuple[int, int]], master: int, proc: asyncio.subprocess.Process | None = None
) -> None:
    async for width, height in sizes:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            if proc is not None:
                proc.send_signal(signal.SIGWINCH)


async def send_chunks(request: Any, first: bytes | None, rest: AsyncIterator[bytes], content_type: str) -> Any:
    """Streams an already-started chunk iterator (its first chunk read, so errors came before
    the headers) as the response body."""
    from aiohttp import web

    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(request)
    if first is not None:
        await resp.write(first)
        async for chunk in rest:
            await resp.write(chunk)
    await resp.write_eof()
    return resp


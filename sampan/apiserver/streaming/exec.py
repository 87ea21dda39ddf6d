"""exec and attach: turn a client session (WebSocket channels or SPDY streams) into one
`StreamBackend` call and report its outcome the way kubelet does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from sampan.api import errors
from sampan.apiserver.streaming import spdy, wschannel
from sampan.apiserver.streaming.backend import StreamBackend, StreamError, StreamIO, pick_container
from sampan.apiserver.streaming.upgrade import SPDY_EXEC_PROTOCOLS, accept_spdy

log = logging.getLogger(__name__)
SPDY_STREAM_WAIT_SECONDS = 30.0  # how long a SPDY client may take to open its streams


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


@dataclass
class ExecOptions:
    container: str
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def parse(cls, request: web.Request, pod: dict, attach: bool) -> ExecOptions:
        """Validate the query like the API server does, before any upgrade happens."""
        phase = pod.get("status", {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            raise errors.bad_request(f"cannot {'attach to' if attach else 'exec into'} a container in a completed pod; current phase is {phase}")
        container = pick_container(pod, request.query.get("container", ""))
        opts = cls(
            container=container,
            command=request.query.getall("command", []),
            stdin=_flag(request, "stdin"),
            stdout=_flag(request, "stdout"),
            stderr=_flag(request, "stderr"),
            tty=_flag(request, "tty"),
        )
        if not attach and not opts.command:
            raise errors.bad_request("you must specify at least 1 command")
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise errors.bad_request("you must specify at least one of stdin, stdout, stderr")
        if opts.tty:
            opts.stderr = False  # a terminal merges stderr into stdout
        return opts


async def run(backend: StreamBackend, pod: dict, opts: ExecOptions, io: StreamIO, attach: bool) -> dict[str, Any]:
    """Run the session and return the Status to send on the error stream."""
    try:
        if attach:
            code = await backend.attach(pod, opts.container, io)
        else:
            code = await backend.exec(pod, opts.container, opts.command, io)
    except StreamError as exc:
        return wschannel.status_internal(str(exc))
    if code == 0:
        return wschannel.status_success()
    return wschannel.status_exit_code(code, opts.command)


async def serve_websocket(request: web.Request, pod: dict, backend: StreamBackend, attach: bool) -> web.StreamResponse:
    opts = ExecOptions.parse(request, pod, attach)
    conn = await wschannel.ChannelConn.accept(request, wschannel.EXEC_PROTOCOLS)
    stdin = asyncio.StreamReader() if opts.stdin else None
    resize = wschannel.ResizeQueue() if opts.tty else None

    def output(channel: int):
        async def write(data: bytes) -> None:
            await conn.send(channel, data)
        return write

    io = StreamIO(
        stdin=stdin,
        stdout=output(wschannel.STDOUT) if opts.stdout else None,
        stderr=output(wschannel.STDERR) if opts.stderr else None,
        tty=opts.tty,
        resize=resize,
    )
    session = asyncio.create_task(run(backend, pod, opts, io, attach))
    reader = asyncio.create_task(_read_client(conn, stdin, resize))
    try:
        await asyncio.wait({session, reader}, return_when=asyncio.FIRST_COMPLETED)
        if session.done():
            await conn.send_status(session.result())
        else:
            session.cancel()  # the client went away: stop the command
            with contextlib.suppress(asyncio.CancelledError):
                await session
    finally:
        reader.cancel()
        await conn.close()
    return conn.ws


async def _read_client(conn: wschannel.ChannelConn, stdin: asyncio.StreamReader | None, resize: wschannel.ResizeQueue | None) -> None:
    try:
        async for channel, payload in conn.messages():
            if channel == wschannel.STDIN and stdin is not None and not stdin.at_eof():
                if payload:
                    stdin.feed_data(payload)
            elif channel == wschannel.RESIZE and resize is not None:
                resize.push_json(payload)
            elif channel == wschannel.CLOSE and conn.is_v5 and payload[:1] == bytes((wschannel.STDIN,)):
                if stdin is not None and not stdin.at_eof():
                    stdin.feed_eof()
    finally:
        if stdin is not None and not stdin.at_eof():
            stdin.feed_eof()
        if resize is not None:
            resize.end()


async def serve_spdy(request: web.Request, pod: dict, backend: StreamBackend, attach: bool) -> web.StreamResponse:
    """The SPDY fallback: the client opens one stream per kind (`streamType` header)."""
    opts = ExecOptions.parse(request, pod, attach)
    expected = {"error"} | {n for n, on in (("stdin", opts.stdin), ("stdout", opts.stdout), ("stderr", opts.stderr), ("resize", opts.tty)) if on}
    streams: dict[str, spdy.Stream] = {}
    all_open = asyncio.Event()

    async def on_stream(stream: spdy.Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        if kind not in expected or kind in streams:
            await stream.reset(spdy.RST_REFUSED_STREAM)
            return
        await stream.reply()
        streams[kind] = stream
        if set(streams) == expected:
            all_open.set()

    resp, protocol, session = await accept_spdy(request, SPDY_EXEC_PROTOCOLS, on_stream)
    reader = asyncio.create_task(session.run())
    try:
        try:
            await asyncio.wait_for(all_open.wait(), SPDY_STREAM_WAIT_SECONDS)
        except TimeoutError:
            log.info("SPDY exec client opened only %s", sorted(streams))
            return resp
        status = await _run_spdy_session(backend, pod, opts, streams, attach)
        err = streams["error"]
        if protocol in (wschannel.V4, wschannel.V5):
            await err.write(orjson.dumps(status))
        elif status.get("status") != "Success":
            await err.write(str(status.get("message", "")).encode())
        for stream in streams.values():
            await stream.close()
        await session.goaway()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return resp


async def _run_spdy_session(backend: StreamBackend, pod: dict, opts: ExecOptions, streams: dict[str, spdy.Stream], attach: bool) -> dict[str, Any]:
    stdin = asyncio.StreamReader() if "stdin" in streams else None
    resize = wschannel.ResizeQueue() if "resize" in streams else None
    pumps = []
    if stdin is not None:
        pumps.append(asyncio.create_task(_spdy_stdin(streams["stdin"], stdin)))
    if resize is not None:
        pumps.append(asyncio.create_task(_spdy_resize(streams["resize"], resize)))
    io = StreamIO(
        stdin=stdin,
        stdout=streams["stdout"].write if "stdout" in streams else None,
        stderr=streams["stderr"].write if "stderr" in streams else None,
        tty=opts.tty,
        resize=resize,
    )
    try:
        return await run(backend, pod, opts, io, attach)
    finally:
        for p in pumps:
            p.cancel()


async def _spdy_stdin(stream: spdy.Stream, stdin: asyncio.StreamReader) -> None:
    while data := await stream.read():
        stdin.feed_data(data)
    stdin.feed_eof()


async def _spdy_resize(stream: spdy.Stream, resize: wschannel.ResizeQueue) -> None:
    # The resize stream carries JSON objects back to back.
    decoder_buf = b""
    while data := await stream.read():
        decoder_buf += data
        while b"}" in decoder_buf:
            obj, _, decoder_buf = decoder_buf.partition(b"}")
            resize.push_json(obj + b"}")
    resize.end()

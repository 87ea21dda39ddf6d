"""SPDY/3.1 framing and a server-side session, enough for port-forward and exec.

kubectl speaks SPDY/3.1 for port-forward (tunneled in a WebSocket or over a raw upgraded
connection) and, as a fallback, for exec/attach. Clients open every stream; the server
answers each SYN_STREAM with a SYN_REPLY, then both sides exchange DATA and half-close
with FIN. Flow control is not enforced by the Kubernetes clients, so WINDOW_UPDATE and
SETTINGS are accepted and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes used here.
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5
MAX_DATA_CHUNK = 32 * 1024


def _dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary as the draft-3 spec lists it (1423 bytes)."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding accept-language "
        "accept-ranges age allow authorization cache-control connection content-base content-encoding "
        "content-language content-length content-location content-md5 content-range content-type date "
        "etag expect expires from host if-match if-modified-since if-none-match if-range "
        "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
        "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
        "user-agent vary via warning www-authenticate method get status"
    ).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    prefixed = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return prefixed + tail.encode()


DICTIONARY = _dictionary()
assert len(DICTIONARY) == 1423


class HeaderCodec:
    """Header blocks: one zlib stream per direction for the whole session, as SPDY requires."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        raw = [struct.pack(">I", len(headers))]
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            raw += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
        block = b"".join(raw)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, data: bytes) -> dict[str, str]:
        block = self._inflate.decompress(data)
        (count,) = struct.unpack_from(">I", block, 0)
        pos, headers = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            # Multiple values are NUL-separated; the first is what these protocols use.
            headers[name.lower()] = block[pos + 4 : pos + 4 + n].decode().split("\0")[0]
            pos += 4 + n
        return headers


@dataclass
class Frame:
    control: bool
    type: int  # control frame type; 0 for DATA
    flags: int
    payload: bytes
    stream_id: int = 0  # DATA frames only


class FrameParser:
    """Splits a byte stream into frames; input may arrive in arbitrary pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            first, flags_len = struct.unpack_from(">II", self._buf, 0)
            length = flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            flags = flags_len >> 24
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise ValueError(f"unsupported SPDY version {version}")
                frames.append(Frame(True, first & 0xFFFF, flags, payload))
            else:
                frames.append(Frame(False, 0, flags, payload, first & 0x7FFFFFFF))
        return frames


def control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


class Transport(Protocol):
    """The byte pipe a session runs over: a WebSocket tunnel or an upgraded socket."""

    async def recv(self) -> bytes:
        """Next bytes from the client; b"" at end of stream."""

    async def send(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Stream:
    """One client-opened stream. read() returns b"" once the client half-closed it."""

    session: SpdySession
    id: int
    headers: dict[str, str]
    _incoming: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    remote_closed: bool = False
    local_closed: bool = False
    replied: bool = False

    async def read(self) -> bytes:
        if self.remote_closed and self._incoming.empty():
            return b""
        return await self._incoming.get()

    async def reply(self) -> None:
        if not self.replied:
            self.replied = True
            await self.session.send_reply(self.id)

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.session.closed:
            return
        await self.reply()
        for i in range(0, len(data), MAX_DATA_CHUNK):
            await self.session.send_raw(data_frame(self.id, 0, data[i : i + MAX_DATA_CHUNK]))

    async def close(self) -> None:
        """Half-close our side (DATA with FIN)."""
        if self.local_closed or self.session.closed:
            return
        await self.reply()
        self.local_closed = True
        await self.session.send_raw(data_frame(self.id, FLAG_FIN, b""))
        self.session.maybe_forget(self)

    async def reset(self, status: int = RST_CANCEL) -> None:
        if not self.local_closed or not self.remote_closed:
            self.local_closed = True
            self._remote_eof()
            await self.session.send_raw(control_frame(RST_STREAM, 0, struct.pack(">II", self.id, status)))
        self.session.maybe_forget(self)

    def _remote_data(self, data: bytes) -> None:
        if data and not self.remote_closed:
            self._incoming.put_nowait(data)

    def _remote_eof(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self._incoming.put_nowait(b"")


StreamHandler = Callable[[Stream], Awaitable[None]]


class SpdySession:
    """Server side of a SPDY/3.1 session. Each new stream is passed to `on_stream`."""

    def __init__(self, transport: Transport, on_stream: StreamHandler) -> None:
        self.transport = transport
        self.on_stream = on_stream
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self._codec = HeaderCodec()
        self._parser = FrameParser()
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_stream_id = 0

    async def send_raw(self, data: bytes) -> None:
        # Header compression state and frame order must match; serialize all sends.
        async with self._send_lock:
            if not self.closed:
                await self.transport.send(data)

    async def send_reply(self, stream_id: int) -> None:
        async with self._send_lock:
            if self.closed:
                return
            block = self._codec.encode({})
            await self.transport.send(control_frame(SYN_REPLY, 0, struct.pack(">I", stream_id) + block))

    def maybe_forget(self, stream: Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.streams.pop(stream.id, None)

    async def run(self) -> None:
        """Read frames until the client goes away, then reset what is left."""
        try:
            while True:
                data = await self.transport.recv()
                if not data:
                    break
                for frame in self._parser.feed(data):
                    if not await self._handle(frame):
                        return
        except (ValueError, struct.error, zlib.error) as exc:
            log.info("closing SPDY session: %s", exc)
        finally:
            self.closed = True
            for stream in list(self.streams.values()):
                stream._remote_eof()
            for task in list(self._tasks):
                task.cancel()
            await self.transport.close()

    async def _handle(self, frame: Frame) -> bool:
        if not frame.control:
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                await self.send_raw(control_frame(RST_STREAM, 0, struct.pack(">II", frame.stream_id, RST_INVALID_STREAM)))
                return True
            stream._remote_data(frame.payload)
            if frame.flags & FLAG_FIN:
                stream._remote_eof()
                self.maybe_forget(stream)
            return True
        p = frame.payload
        if frame.type == SYN_STREAM:
            stream_id = struct.unpack_from(">I", p, 0)[0] & 0x7FFFFFFF
            headers = self._codec.decode(p[10:])
            stream = Stream(self, stream_id, headers)
            self._last_stream_id = stream_id
            self.streams[stream_id] = stream
            if frame.flags & FLAG_FIN:
                stream._remote_eof()
            task = asyncio.create_task(self._serve_stream(stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif frame.type == RST_STREAM:
            stream_id = struct.unpack_from(">I", p, 0)[0] & 0x7FFFFFFF
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                stream.local_closed = True
                stream._remote_eof()
        elif frame.type == PING:
            await self.send_raw(control_frame(PING, 0, p[:4]))
        elif frame.type == GOAWAY:
            return False
        elif frame.type == HEADERS:
            self._codec.decode(p[4:])  # must inflate to keep the zlib stream in step
        # SETTINGS and WINDOW_UPDATE need no action: clients do not enforce flow control.
        return True

    async def _serve_stream(self, stream: Stream) -> None:
        try:
            await self.on_stream(stream)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("SPDY stream %d failed", stream.id)
            await stream.reset(RST_PROTOCOL_ERROR)

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        """Run work tied to the session's lifetime (cancelled when the session ends)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def goaway(self) -> None:
        await self.send_raw(control_frame(GOAWAY, 0, struct.pack(">II", self._last_stream_id, 0)))

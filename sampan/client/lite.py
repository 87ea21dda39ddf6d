"""``HttpClient`` over a small HTTP/1.1 transport on asyncio streams, without aiohttp.

For the node agent: importing aiohttp (with multidict, yarl, attrs, email ...) costs about
12 MB of resident memory, a quarter of an idle agent, while the agent only needs what the
API server speaks: JSON requests on keep-alive connections and chunked watch streams.
h11 (sans-IO, ~0.4 MB) does the HTTP/1.1 framing and decides whether a connection can be
reused; this module only moves bytes. Everything above the transport (paths, parameters,
errors, watch events) is HttpClient's.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import h11
import orjson

from sampan.client.http import HttpClient, _complete_events, _decode, _event, _params
from sampan.client.interface import Obj, ResourceRef

IDLE_SECONDS = 50.0  # below the server's keep-alive timeout (75 s), so it never closes one first
READ_SIZE = 1 << 16


class _Response:
    """What ``_decode`` reads from a response: the status and the headers as the server spelled them."""

    def __init__(self, head: h11.Response) -> None:
        self.status = head.status_code
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in head.headers.raw_items()}


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.http = h11.Connection(h11.CLIENT)
        self.idle_since = time.monotonic()

    def usable(self) -> bool:
        return (self.http.our_state is h11.IDLE and not self.writer.is_closing() and not self.reader.at_eof()
                and time.monotonic() - self.idle_since < IDLE_SECONDS)

    def close(self) -> None:
        self.writer.close()

    async def send(self, *events: h11.Event) -> None:
        for event in events:
            if data := self.http.send(event):
                self.writer.write(data)
        await self.writer.drain()

    async def next_event(self) -> h11.Event:
        try:
            while (event := self.http.next_event()) is h11.NEED_DATA:
                self.http.receive_data(await self.reader.read(READ_SIZE))  # b"" tells h11 about the close
        except h11.RemoteProtocolError as exc:  # garbage, or closed mid-response: a broken connection
            raise ConnectionError(f"HTTP/1.1 from the server: {exc}") from exc
        return event  # type: ignore[return-value]

    async def head(self) -> h11.Response:
        while not isinstance(event := await self.next_event(), h11.Response):
            if not isinstance(event, h11.InformationalResponse):  # 1xx: wait for the real one
                raise ConnectionError(f"unexpected {type(event).__name__} before the response")
        return event

    async def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives (h11 handles length, chunked and read-to-close framing)."""
        while not isinstance(event := await self.next_event(), h11.EndOfMessage):
            if isinstance(event, h11.Data):
                yield bytes(event.data)

    def reusable(self) -> bool:
        """After a whole response: h11 says whether both sides keep the connection alive."""
        if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()
            return True
        return False


class LiteHttpClient(HttpClient):
    """The Client interface like HttpClient, on asyncio streams (see the module docstring)."""

    def __init__(self, server: str, ssl_context: ssl.SSLContext | bool = False, token: str | None = None,
                 token_file: str | None = None, pool_size: int = 100, request_timeout: float = 60.0,
                 server_hostname: str | None = None) -> None:
        """``server_hostname``: the name the server's certificate is checked for (and sent as
        SNI) instead of the URL's host, e.g. when joining by an address the certificate lacks."""
        super().__init__(server, ssl_context, token, token_file, pool_size, request_timeout)
        self._server_hostname = server_hostname
        url = urlsplit(self.server)
        self._host = url.hostname or "127.0.0.1"
        self._tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            if isinstance(ssl_context, ssl.SSLContext):
                self._tls = ssl_context
            elif ssl_context:
                self._tls = ssl.create_default_context()
            else:  # like aiohttp's ssl=False: encrypted, not verified (no CA bundle loaded)
                self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._base = url.path.rstrip("/")
        self._request_timeout = request_timeout
        self._idle: list[_Conn] = []
        self._open: set[_Conn] = set()
        self._slots = asyncio.Semaphore(pool_size)

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    # -- connections ----------------------------------------------------------------
    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._tls, server_hostname=self._server_hostname if self._tls else None)
        conn = _Conn(reader, writer)
        self._open.add(conn)
        return conn

    def _discard(self, conn: _Conn) -> None:
        conn.close()
        self._open.discard(conn)

    def _pooled(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            self._discard(conn)
        return None

    def _request(self, method: str, path: str, params: dict[str, str] | None, headers: dict[str, str],
                 data: bytes | None) -> list[h11.Event]:
        query = urlencode(params, quote_via=quote, safe="") if params else ""
        fields = [("Host", f"{self._host}:{self._port}"), *headers.items()]
        if data is not None or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(data or b""))))
        target = self._base + path + ("?" + query if query else "")
        events: list[h11.Event] = [h11.Request(method=method, target=target, headers=fields)]
        if data:
            events.append(h11.Data(data=data))
        return [*events, h11.EndOfMessage()]

    # -- requests -----------------------------------------------------------------------
    async def request(self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json") -> Obj:
        data = orjson.dumps(body) if body is not None else None
        events = self._request(method, path, params, self._headers(content_type if data is not None else None),
                               data)
        async with self._slots:
            async with asyncio.timeout(self._request_timeout):
                for attempt in range(2):
                    conn = self._pooled() if attempt == 0 else None
                    reused = conn is not None
                    conn = conn or await self._connect()
                    try:
                        await conn.send(*events)
                        head = await conn.head()
                        break
                    except ConnectionError:
                        self._discard(conn)
                        if reused:
                            continue  # the server closed an idle connection as it was reused: once more
                        raise
                    except BaseException:
                        self._discard(conn)
                        raise
                try:
                    raw = b"".join([chunk async for chunk in conn.body()])
                except BaseException:
                    self._discard(conn)
                    raise
        if conn.reusable():
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            self._discard(conn)
        return _decode(_Response(head), raw)  # type: ignore[arg-type]

    async def fetch_public(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` without credentials on a connection of its own: (status, body)."""
        async with asyncio.timeout(self._request_timeout):
            conn = await self._connect()
            try:
                await conn.send(*self._request("GET", path, None, {}, None))
                head = await conn.head()
                return head.status_code, b"".join([chunk async for chunk in conn.body()])
            finally:
                self._discard(conn)

    async def watch(self, resource: ResourceRef, namespace: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, resource_version: str | None = None,
                    allow_bookmarks: bool = True, timeout_seconds: int | None = None) -> AsyncIterator[Obj]:
        params = _params(watch=True, labelSelector=label_selector, fieldSelector=field_selector,
                         resourceVersion=resource_version, allowWatchBookmarks=allow_bookmarks,
                         timeoutSeconds=timeout_seconds)
        read_limit = timeout_seconds + 60 if timeout_seconds else None  # only a silent socket is an error
        async with self._slots:
            conn = await asyncio.wait_for(self._connect(), 30)
            try:
                await conn.send(*self._request("GET", resource.path(namespace), params, self._headers(), None))
                head = await asyncio.wait_for(conn.head(), read_limit)
                chunks = conn.body()
                if head.status_code >= 300:
                    _decode(_Response(head), b"".join([c async for c in chunks]))  # type: ignore[arg-type]
                buffer = b""
                while True:
                    try:
                        chunk = await asyncio.wait_for(anext(chunks), read_limit)
                    except StopAsyncIteration:
                        break
                    except ConnectionError:
                        return  # the server went away mid-stream (a partial line is no event): watch again
                    events, buffer = _complete_events(buffer + chunk)
                    for event in events:
                        yield event
                if buffer.strip():
                    yield _event(orjson.loads(buffer))
            finally:
                self._discard(conn)

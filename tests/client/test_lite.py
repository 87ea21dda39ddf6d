"""LiteHttpClient's transport against a scripted HTTP/1.1 server: kept-alive connections and
one the server closed while idle, bodies without a length, chunked bodies, and errors.
(tests/client/test_e2e_server.py runs the Client interface through it against a real server.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from sampan.api.errors import APIError
from sampan.client.interface import CONFIGMAPS
from sampan.client.lite import LiteHttpClient

Reply = Callable[[bytes], bytes]


class Scripted:
    """Answers each request with the next reply; records request heads and connections."""

    def __init__(self, replies: list[Reply], close_after: set[int] | None = None) -> None:
        self.replies = replies
        self.close_after = close_after or set()  # close the connection after these replies
        self.heads: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.heads.append(head)
                n = len(self.heads) - 1
                writer.write(self.replies[n](body))
                await writer.drain()
                if n in self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Scripted]]:
    made: list[Scripted] = []

    def make(replies: list[Reply], close_after: set[int] | None = None) -> Scripted:
        s = Scripted(replies, close_after)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.server is not None:
            s.server.close()


async def start(s: Scripted) -> LiteHttpClient:
    s.server = await asyncio.start_server(s.serve, "127.0.0.1", 0)
    return LiteHttpClient(s.url, token="t0ken")


def json_reply(obj: object, status: str = "200 OK", extra: str = "") -> Reply:
    data = orjson.dumps(obj)
    return lambda _body: (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
                          f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def cm(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


async def test_keep_alive_and_a_connection_closed_while_idle(scripted: Callable[..., Scripted]) -> None:
    s = scripted([json_reply(cm("a")), json_reply(cm("b")), json_reply(cm("c"))], close_after={1})
    client = await start(s)
    try:
        assert (await client.get(CONFIGMAPS, "a", "default"))["metadata"]["name"] == "a"
        assert (await client.get(CONFIGMAPS, "b", "default"))["metadata"]["name"] == "b"
        assert s.connections == 1  # the second request reused the first connection
        await asyncio.sleep(0.05)  # the server closed it after the second reply
        assert (await client.get(CONFIGMAPS, "c", "default"))["metadata"]["name"] == "c"
        assert s.connections == 2
        assert s.heads[0].startswith(b"GET /api/v1/namespaces/default/configmaps/a HTTP/1.1\r\n")
        assert b"Authorization: Bearer t0ken" in s.heads[0]
    finally:
        await client.close()


async def test_bodies_chunked_empty_and_until_close(scripted: Callable[..., Scripted]) -> None:
    chunked = (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")
    s = scripted([lambda body: chunked, lambda body: b"HTTP/1.1 204 No Content\r\n\r\n",
                  lambda body: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"b\": 2}"], close_after={2})
    client = await start(s)
    try:
        assert await client.create(CONFIGMAPS, cm("x")) == {"a": 1}
        assert s.heads[0].startswith(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\n")
        assert await client.request("DELETE", "/x") == {}  # 204: no body to wait for
        assert await client.request("GET", "/y") == {"b": 2}  # read to the close
        assert s.connections == 1
    finally:
        await client.close()


async def test_errors_are_statuses(scripted: Callable[..., Scripted]) -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests",
              "message": "slow down", "code": 429}
    s = scripted([json_reply(status, "429 Too Many Requests", "Retry-After: 3\r\n")])
    client = await start(s)
    try:
        with pytest.raises(APIError) as info:
            await client.list(CONFIGMAPS, "default", label_selector="app in (a,b)")
        assert info.value.code == 429
        assert b"labelSelector=app%20in%20%28a%2Cb%29" in s.heads[0]
    finally:
        await client.close()
    refused = LiteHttpClient(s.url.rsplit(":", 1)[0] + ":1")  # nothing listens on port 1
    with pytest.raises(OSError):
        await refused.get(CONFIGMAPS, "a", "default")


async def test_watch_lines_across_chunks(scripted: Callable[..., Scripted]) -> None:
    events = [{"type": "ADDED", "object": cm("a")}, {"type": "DELETED", "object": cm("a")}]
    data = b"".join(orjson.dumps(e) + b"\n" for e in events)
    parts = [data[:7], data[7:40], data[40:]]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    s = scripted([lambda _b: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body])
    client = await start(s)
    try:
        got = [ev async for ev in client.watch(CONFIGMAPS, "default", resource_version="5")]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("ADDED", "a"), ("DELETED", "a")]
        assert b"watch=true" in s.heads[0] and b"resourceVersion=5" in s.heads[0]
    finally:
        await client.close()


async def test_a_watch_cut_mid_stream_ends_and_garbage_is_a_connection_error(
        scripted: Callable[..., Scripted]) -> None:
    line = orjson.dumps({"type": "ADDED", "object": cm("a")}) + b"\n"
    cut = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n%s\r\n" % (len(line), line) + b"40\r\n{\"type\"")  # the server dies mid-chunk
    s = scripted([lambda _b: cut, lambda _b: b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
                  lambda _b: b"HTTP/1.1 100 Continue\r\n\r\n" + json_reply(cm("b"))(_b)], close_after={0, 1})
    client = await start(s)
    try:
        got = [ev async for ev in client.watch(CONFIGMAPS, "default")]
        assert [e["object"]["metadata"]["name"] for e in got] == ["a"]  # the caller watches again
        with pytest.raises(ConnectionError):
            await client.get(CONFIGMAPS, "x", "default")
        assert (await client.get(CONFIGMAPS, "b", "default"))["metadata"]["name"] == "b"  # 1xx skipped
        assert s.connections == 3  # neither broken connection went back to the pool
    finally:
        await client.close()

"""Wire-level checks of the SPDY/3.1 session and the WebSocket channel protocols."""

from __future__ import annotations

import asyncio
import struct
import zlib
from typing import AsyncIterator

import orjson
import pytest
from aiohttp import ClientSession, WSMsgType, web

from sampan.apiserver.streaming import LocalProcessBackend, handle_exec, handle_portforward, spdy
from tests.apiserver.test_streaming import POD, free_port


def test_dictionary_is_the_spec_one() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2  # the dictionary id SPDY/3 peers check


def test_header_codec_round_trip_shares_context() -> None:
    sender, receiver = spdy.HeaderCodec(), spdy.HeaderCodec()
    receiver._inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    for i in range(3):  # later blocks depend on earlier ones: one zlib stream per direction
        block = sender.encode({"streamType": "data", "port": "80", "requestID": str(i)})
        assert receiver.decode(block) == {"streamtype": "data", "port": "80", "requestid": str(i)}


def test_frame_parser_handles_split_input() -> None:
    wire = spdy.control_frame(spdy.PING, 0, b"\0\0\0\1") + spdy.data_frame(3, spdy.FLAG_FIN, b"abc")
    parser = spdy.FrameParser()
    frames = [f for b in wire for f in parser.feed(bytes([b]))]
    assert [(f.control, f.type, f.stream_id, f.flags, f.payload) for f in frames] == [
        (True, spdy.PING, 0, 0, b"\0\0\0\1"),
        (False, 0, 3, spdy.FLAG_FIN, b"abc"),
    ]


class MemoryTransport:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent = bytearray()

    async def recv(self) -> bytes:
        return await self.incoming.get()

    async def send(self, data: bytes) -> None:
        self.sent += data

    async def close(self) -> None:
        pass


async def test_session_replies_pings_and_echoes_a_stream() -> None:
    async def echo(stream: spdy.Stream) -> None:
        await stream.reply()
        while data := await stream.read():
            await stream.write(data.upper())
        await stream.close()

    transport = MemoryTransport()
    session = spdy.SpdySession(transport, echo)
    client_codec = spdy.HeaderCodec()
    syn = struct.pack(">IIH", 1, 0, 0) + client_codec.encode({"streamtype": "data"})
    for frame in (spdy.control_frame(spdy.SYN_STREAM, 0, syn), spdy.control_frame(spdy.PING, 0, b"\0\0\0\7"),
                  spdy.data_frame(1, spdy.FLAG_FIN, b"hi")):
        transport.incoming.put_nowait(frame)
    runner = asyncio.create_task(session.run())
    for _ in range(50):
        await asyncio.sleep(0.01)
        frames = spdy.FrameParser().feed(bytes(transport.sent))
        if any(not f.control and f.flags & spdy.FLAG_FIN for f in frames):
            break
    transport.incoming.put_nowait(b"")  # the client goes away
    await runner
    kinds = [(f.control, f.type, f.payload if not f.control or f.type == spdy.PING else None) for f in frames]
    assert (True, spdy.PING, b"\0\0\0\7") in kinds
    assert (True, spdy.SYN_REPLY, None) in kinds
    assert (False, 0, b"HI") in kinds


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[str]:
    backend = LocalProcessBackend(cwd=str(tmp_path))
    app = web.Application()

    async def exec_route(request: web.Request) -> web.StreamResponse:
        return await handle_exec(request, POD, backend)

    async def pf_route(request: web.Request) -> web.StreamResponse:
        return await handle_portforward(request, POD, backend)

    app.router.add_get("/exec", exec_route)
    app.router.add_get("/portforward", pf_route)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _frames(ws) -> list[tuple[int, bytes]]:
    out = []
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            out.append((msg.data[0], msg.data[1:]))
    return out


async def test_v4_exec_reports_status_json(server: str) -> None:
    async with ClientSession() as http:
        url = f"{server}/exec?command=sh&command=-c&command=echo+hi%3B+exit+5&stdout=true&stderr=true"
        async with http.ws_connect(url, protocols=("v4.channel.k8s.io",)) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            frames = await _frames(ws)
    assert (1, b"hi\n") in frames
    status = orjson.loads(dict(frames)[3])
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]


async def test_exec_rejects_bad_requests_before_upgrade(server: str) -> None:
    async with ClientSession() as http:
        async with http.get(f"{server}/exec?command=true&stdout=true") as resp:
            assert resp.status == 400  # not an upgrade request
        async with http.get(f"{server}/exec?command=true&stdout=true&container=nope",
                            headers={"Connection": "Upgrade", "Upgrade": "websocket"}) as resp:
            body = await resp.json()
            assert (resp.status, body["reason"]) == (400, "BadRequest")
            assert "container nope is not valid" in body["message"]


async def test_port_forward_channels_without_subprotocol(server: str) -> None:
    """kr8s connects with no subprotocol, sends 0x00+data and skips the port prefixes."""

    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readexactly(5)).upper())
        await writer.drain()
        writer.close()

    target = await asyncio.start_server(upper, "127.0.0.1", 0)
    port = target.sockets[0].getsockname()[1]
    try:
        async with ClientSession() as http:
            async with http.ws_connect(f"{server}/portforward?ports={port}") as ws:
                await ws.send_bytes(b"\0hello")
                frames = await _frames(ws)
    finally:
        target.close()
    prefix = struct.pack("<H", port)
    assert frames[:2] == [(0, prefix), (1, prefix)]
    assert b"".join(p for c, p in frames[2:] if c == 0) == b"HELLO"

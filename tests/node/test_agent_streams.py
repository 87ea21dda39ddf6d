"""Reading CRI log files for pods/log (tail, since, limit, timestamps, partial lines, follow),
and NodeStreams sending each pod to its node's backend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sampan.apiserver.streaming.backend import StreamError
from sampan.node.streams import LogOptions, NodeStreams, read_log_lines, stream_log

LOG = (b"2026-01-01T00:00:01.000000000Z stdout F first\n"
       b"2026-01-01T00:00:02.000000000Z stderr P par\n"
       b"2026-01-01T00:00:02.500000000Z stderr F tial\n"
       b"2026-01-01T00:00:03.000000000Z stdout F third\n")


async def collect(path: Path, opts: LogOptions, running=lambda: False) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join([chunk async for chunk in stream_log(path, opts, running)])


async def test_log_options(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(LOG)
    assert await collect(path, LogOptions("c")) == b"first\npartial\nthird\n"
    assert await collect(path, LogOptions("c", tail_lines=1)) == b"third\n"
    assert await collect(path, LogOptions("c", tail_lines=0)) == b""
    assert await collect(path, LogOptions("c", limit_bytes=8)) == b"first\npa"
    stamped = await collect(path, LogOptions("c", timestamps=True, tail_lines=1))
    assert stamped == b"2026-01-01T00:00:03.000000000Z third\n"
    assert await collect(path, LogOptions("c", since_time="2026-01-01T00:00:02.600000000Z")) == b"third\n"
    assert await collect(tmp_path / "missing.log", LogOptions("c")) == b""
    assert read_log_lines(path, tail=2) == ["tial\n", "third\n"]


async def test_follow_until_container_ends(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(LOG[:46])
    alive = {"running": True}
    task = asyncio.create_task(collect(path, LogOptions("c", follow=True), lambda: alive["running"]))
    await asyncio.sleep(0.3)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    with open(path, "ab") as f:
        f.write(f"{stamp} stdout F later\n".encode())
    await asyncio.sleep(0.5)
    alive["running"] = False
    assert await asyncio.wait_for(task, 5) == b"first\nlater\n"


async def test_node_streams_routing() -> None:
    class Backend:
        async def exec(self, pod: dict, container: str, command: list[str], io: object) -> int:
            return 7

    streams = NodeStreams()
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}}
    assert not streams.serves(pod)
    with pytest.raises(StreamError, match="no node agent is serving node n1"):
        await streams.exec(pod, "c", ["x"], None)  # type: ignore[arg-type]
    streams.register("n1", Backend())
    assert streams.serves(pod)
    assert await streams.exec(pod, "c", ["x"], None) == 7  # type: ignore[arg-type]
    streams.unregister("n1")
    assert not streams.serves(pod)

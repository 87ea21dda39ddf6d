"""Helpers shared by the runtime tests: waiting for a state, reading CRI logs, capturing exec output."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from sampan.apiserver.streaming.backend import StreamIO
from sampan.node.runtimes.base import ContainerState

# RFC 3339 with nanoseconds: "Z" from the shim, a "+00:00" style offset from conmon.
CRI_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) (F|P) (.*)$")


async def wait_status(runtime, container_id: str, status: str = "exited", timeout: float = 60.0) -> ContainerState:
    deadline = time.monotonic() + timeout
    while True:
        st = await runtime.state(container_id)
        if st.status == status:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"{container_id} is {st.status}, not {status}")
        await asyncio.sleep(0.1)


def log_lines(path: Path) -> list[tuple[str, str]]:
    """(stream, text) of every log line; fails on a line not in CRI format."""
    out = []
    for line in path.read_text().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(2), m.group(4)))
    return out


async def wait_log(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and any(t == text for _, t in log_lines(path))):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in {path}")
        await asyncio.sleep(0.1)


class Capture:
    """A StreamIO whose output is collected in memory."""

    def __init__(self, stdin: bytes | None = None, tty: bool = False) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        reader = None
        if stdin is not None:
            reader = asyncio.StreamReader()
            reader.feed_data(stdin)
            reader.feed_eof()
        self.io = StreamIO(stdin=reader, stdout=self._out, stderr=None if tty else self._err, tty=tty)

    async def _out(self, data: bytes) -> None:
        self.stdout += data

    async def _err(self, data: bytes) -> None:
        self.stderr += data

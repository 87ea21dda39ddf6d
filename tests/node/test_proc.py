"""Helper programs run from the event loop (sampan/node/proc.py), on asyncio's loop and uvloop."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from sampan.node import proc


def both_loops(coro_fn):  # the agent runs on uvloop, tests on asyncio's loop
    def runner() -> None:
        asyncio.run(coro_fn())
        uvloop.run(coro_fn())
    return runner


@both_loops
async def test_output_exit_code_and_input() -> None:
    done = await proc.run("sh", "-c", "cat; echo err >&2; exit 3", stdin=b"hello")
    assert (done.code, done.out, done.err) == (3, b"hello", b"err\n")


@both_loops
async def test_big_output_and_input_do_not_block() -> None:
    data = b"x" * (1 << 20)  # far more than a pipe holds
    done = await proc.run("cat", stdin=data)
    assert done.code == 0 and done.out == data


@both_loops
async def test_timeout_kills_the_program() -> None:
    began = time.monotonic()
    done = await proc.run("sleep", "30", timeout=0.3)
    assert done.code == -1 and time.monotonic() - began < 10


@both_loops
async def test_many_at_once() -> None:
    results = await asyncio.gather(*(proc.run("sh", "-c", f"echo {i}") for i in range(50)))
    assert [r.out for r in results] == [f"{i}\n".encode() for i in range(50)]


@both_loops
async def test_missing_program_raises() -> None:
    with pytest.raises(FileNotFoundError):
        await proc.run("/nonexistent/program")


@both_loops
async def test_daemon_holding_the_pipe_does_not_block() -> None:
    # The program leaves a child with its stdout open: the result comes when the program exits.
    began = time.monotonic()
    done = await proc.run("sh", "-c", "sleep 5 & echo started")
    assert done.out == b"started\n" and time.monotonic() - began < 4

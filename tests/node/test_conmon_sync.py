"""conmon's sync pipe is read with one owner of its descriptor: closed once, never twice (a
second close can take a descriptor another thread just opened under the same number)."""

from __future__ import annotations

import asyncio
import gc
import os

import pytest
import uvloop

from sampan.node.runtimes import conmon


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_report_is_read_and_the_descriptor_closed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def second_owner(*args: object, **kwargs: object) -> None:
        raise AssertionError("the descriptor must not get a second owner (a file object for the loop's pipe)")

    monkeypatch.setattr(os, "fdopen", second_owner)

    async def scenario() -> None:
        r, w = os.pipe()
        os.write(w, b'{"pid": 4242}\n')
        reading = asyncio.ensure_future(conmon._read_sync(r))
        await asyncio.sleep(0.01)
        os.close(w)
        assert await reading == {"pid": 4242}
        assert _closed(r)
        # The number is free: whoever gets it next keeps it, whatever the loop and GC do later.
        canary_r, canary_w = os.pipe()
        try:
            for _ in range(5):
                gc.collect()
                await asyncio.sleep(0.01)
            assert not _closed(canary_r) and not _closed(canary_w)
        finally:
            os.close(canary_r)
            os.close(canary_w)

    uvloop.run(scenario())  # the loop the agent runs on


def test_a_silent_or_garbled_pipe_gives_no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conmon, "SYNC_TIMEOUT", 0.1)

    async def scenario() -> None:
        r, w = os.pipe()
        try:
            assert await conmon._read_sync(r) is None  # nothing within the timeout
            assert _closed(r)
        finally:
            os.close(w)
        r, w = os.pipe()
        os.write(w, b"not json\n")
        os.close(w)
        assert await conmon._read_sync(r) is None
        r, w = os.pipe()
        os.close(w)  # conmon died without a word
        assert await conmon._read_sync(r) is None

    uvloop.run(scenario())

"""wait_event: set, timed out, and cancelled while the event is set in the same moment."""

from __future__ import annotations

import asyncio

import pytest

from sampan.client.wakeup import wait_event


async def test_returns_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True
    assert await wait_event(event, 0) is True  # already set


async def test_a_cancellation_is_never_lost() -> None:
    # Set and cancelled in one loop iteration: asyncio.wait_for on 3.11 returned normally here.
    for _ in range(20):
        event = asyncio.Event()
        waiting = asyncio.ensure_future(wait_event(event, 30))
        await asyncio.sleep(0)
        event.set()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting


async def test_no_waiter_is_left_behind() -> None:
    event = asyncio.Event()
    before = len(asyncio.all_tasks())
    await wait_event(event, 0.01)
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before

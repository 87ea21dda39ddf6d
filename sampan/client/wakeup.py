"""Waiting for an ``asyncio.Event`` with a time limit, without losing a cancellation.

On Python 3.11 ``asyncio.wait_for(event.wait(), timeout)`` returns normally when the event
is set in the same loop iteration as the waiting task is cancelled: the cancellation is
swallowed, and a loop that waits this way between rounds never ends. ``asyncio.wait`` does not
have that race.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Waits until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()

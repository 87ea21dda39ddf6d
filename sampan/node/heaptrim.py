"""Gives freed heap memory back to the kernel now and then (glibc only).

A node agent allocates most of its memory while starting (imports, the first lists of pods
and services, TLS handshakes); much of what that frees stays mapped in the C heap, where
glibc only returns the top of the heap by itself. ``malloc_trim(0)`` also releases free
pages in the middle: about 1 MB of an idle agent's RSS. It takes a few milliseconds.
"""

from __future__ import annotations

import asyncio
import ctypes
from typing import Any


def _libc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this process already uses
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


async def trim_periodically(first_after: float = 1.0, period: float = 60.0) -> None:
    """Trims ``first_after`` seconds from now (start-up done), then every ``period`` seconds."""
    trim = _libc_trim()
    if trim is None:
        return
    await asyncio.sleep(first_after)
    while True:
        trim(0)
        await asyncio.sleep(period)

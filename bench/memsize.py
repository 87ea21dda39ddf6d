"""Memory measures for bench/memory.py: process RSS/PSS, retained size of object graphs,
tracemalloc totals by source file."""

from __future__ import annotations

import asyncio
import gc
import sys
import types
from pathlib import Path
from typing import Any

MB = 1024 * 1024
ROOT = str(Path(__file__).resolve().parent.parent)

# The walk follows data, not code or machinery: these types end it.
_STOP = (
    type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.CodeType,
    types.FrameType, types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType, asyncio.Future,
    asyncio.AbstractEventLoop, asyncio.Event, asyncio.Condition, asyncio.Semaphore, asyncio.Lock,
)


def proc_memory() -> dict[str, float]:
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_mb"] = round(int(line.split()[1]) / 1024, 1)
            elif line.startswith("VmHWM:"):
                out["hwm_mb"] = round(int(line.split()[1]) / 1024, 1)
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss_mb"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        out["pss_mb"] = float("nan")
    return out


def malloc_trim() -> None:
    """Gives freed heap pages back to the OS (glibc), so RSS shows what is live plus fragmentation."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _skip(obj: Any) -> bool:
    if isinstance(obj, _STOP):
        return True
    module = type(obj).__module__ or ""
    # Clients, registries and stores are shared machinery, not a component's data.
    return module.startswith(("sampan.client.local", "sampan.client.http", "sampan.registry", "sampan.store.sqlite",
                              "sampan.client.events", "aiohttp", "logging"))


def retained(root: Any, seen: set[int]) -> int:
    """Bytes of every object reachable from ``root`` not already in ``seen``."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        oid = id(obj)
        if oid in seen or _skip(obj):
            continue
        seen.add(oid)
        total += sys.getsizeof(obj)
        if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        else:
            stack.extend(gc.get_referents(obj))
    return total


def deep_sizes(parts: list[tuple[str, Any]]) -> dict[str, float]:
    seen: set[int] = set()
    return {name: round(retained(root, seen) / MB, 1) for name, root in parts}


def trace_by_file(limit: int = 25) -> dict[str, float]:
    import tracemalloc

    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("filename")
    out: dict[str, float] = {"total": round(sum(s.size for s in stats) / MB, 1)}
    for stat in stats[:limit]:
        name = stat.traceback[0].filename.replace(ROOT + "/", "")
        out[name] = round(stat.size / MB, 1)
    return out

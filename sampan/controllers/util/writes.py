"""Small pieces every workload controller's write path uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Obj = dict[str, Any]


def typed(obj: Obj, api_version: str, kind: str) -> Obj:
    """Cached objects from a watch may lack kind/apiVersion; events and owner refs need them."""
    if obj.get("kind") == kind and obj.get("apiVersion") == api_version:
        return obj
    return {**obj, "apiVersion": api_version, "kind": kind}


async def slow_start_batch(count: int, initial: int, fn: Callable[[], Awaitable[None]]) -> tuple[int, int, BaseException | None]:
    """Runs ``fn`` ``count`` times in growing batches; stops after a batch with an error.
    Returns (successes, attempted, first error)."""
    done = successes = 0
    batch = min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        done += batch
        if errors:
            return successes, done, errors[0]
        batch = min(2 * batch, count - done)
    return successes, done, None


def status_patch(old: Obj | None, new: Obj) -> Obj:
    """A merge patch turning status ``old`` into ``new`` (absent keys become null)."""
    patch: Obj = dict(new)
    for key in old or {}:
        if key not in new:
            patch[key] = None
    return {"status": patch}


def error_message(exc: BaseException) -> str:
    status: Any = getattr(exc, "status", None)
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return str(exc)


def namespace_terminating(exc: BaseException) -> bool:
    status: Any = getattr(exc, "status", None)
    if not isinstance(status, dict):
        return False
    causes = (status.get("details") or {}).get("causes") or []
    return any(c.get("reason") == "NamespaceTerminating" for c in causes)

"""Small blocking helpers of the image store."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def config_summary(config: dict) -> dict[str, Any]:
    """The parts of an image config that containers need."""
    c = config.get("config") or {}
    return {
        "entrypoint": list(c.get("Entrypoint") or []), "cmd": list(c.get("Cmd") or []),
        "env": list(c.get("Env") or []), "working_dir": c.get("WorkingDir") or "", "user": c.get("User") or "",
        "exposed_ports": sorted(c.get("ExposedPorts") or {}), "labels": dict(c.get("Labels") or {}),
        "stop_signal": c.get("StopSignal") or "",
    }


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Runs ``fn`` in a worker thread; when cancelled, waits for the thread to finish first so
    that the caller's cleanup never races with it."""
    future = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()

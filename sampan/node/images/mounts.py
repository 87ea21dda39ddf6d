"""overlayfs mounts of image layers (system calls, run without blocking the loop)."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

from .refs import ImageError


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    if "\\" not in field:
        return field  # the usual case: nothing to decode
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> set[str]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return {_unescape(line.split()[4]) for line in f if line.strip()}


async def is_mounted(path: Path) -> bool:
    return str(path) in await asyncio.to_thread(mount_points)


async def mount_overlay(root: Path, lower: list[str], upper: str, work: str, merged: Path) -> None:
    """Mounts with paths relative to ``root`` (the mount runs there): the kernel takes at most
    one page of mount options, and short relative layer paths fit many more layers. A system
    call in a thread of its own, not the mount program (see sampan/node/namespaces.py)."""
    from sampan.node import namespaces

    for path in (*lower, upper, work):
        if "," in path or ":" in path:
            raise ImageError(f"unusable overlay path {path!r}")
    options = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if len(options) >= os.sysconf("SC_PAGE_SIZE") - 1:
        raise ImageError(f"image has too many layers ({len(lower)}) for one overlay mount")
    try:
        await namespaces.mount("overlay", merged, options, cwd=root)
    except OSError as exc:
        raise ImageError(f"overlay mount failed: {exc}") from exc


async def unmount(path: Path) -> None:
    from sampan.node import namespaces

    def detach() -> None:
        try:
            namespaces.umount(path)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return  # not mounted
            if exc.errno != errno.EBUSY:
                raise
            # Busy (a process still has its cwd there): detach it now, the kernel frees it later.
            namespaces.umount(path, lazy=True)

    try:
        await asyncio.to_thread(detach)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise ImageError(f"cannot unmount {path}: {exc}") from exc

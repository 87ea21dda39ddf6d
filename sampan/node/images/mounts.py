"""overlayfs mounts of image layers (the mount/umount programs, run without blocking the loop)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .refs import ImageError


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
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


async def _run(*argv: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def mount_overlay(root: Path, lower: list[str], upper: str, work: str, merged: Path) -> None:
    """Mounts with paths relative to ``root`` (the mount program runs there): the kernel takes
    at most one page of mount options, and short relative layer paths fit many more layers."""
    for path in (*lower, upper, work):
        if "," in path or ":" in path:
            raise ImageError(f"unusable overlay path {path!r}")
    options = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if len(options) >= os.sysconf("SC_PAGE_SIZE") - 1:
        raise ImageError(f"image has too many layers ({len(lower)}) for one overlay mount")
    code, out = await _run("mount", "-t", "overlay", "overlay", "-o", options, str(merged), cwd=root)
    if code != 0:
        raise ImageError(f"overlay mount failed: {out}")


async def unmount(path: Path) -> None:
    if not await is_mounted(path):
        return
    code, out = await _run("umount", str(path))
    if code != 0 and await is_mounted(path):
        # Busy (a process still has its cwd there): detach it now, the kernel frees it later.
        code, out = await _run("umount", "-l", str(path))
        if code != 0 and await is_mounted(path):
            raise ImageError(f"cannot unmount {path}: {out}")

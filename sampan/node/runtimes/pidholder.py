"""The PID namespace of a pod with ``shareProcessNamespace: true``.

Containers need a process that stays PID 1 of their shared namespace (the kernel ends a PID
namespace with its first process): ``catatonit -P``, the pause process podman's pods use,
which only reaps orphans. It runs in a session of its own, outside the agent (so agent restarts
leave it, like conmon), its namespace is bind-mounted on the sandbox's ``pid`` file for the
containers to join, and its pid is kept in ``pid-holder`` to stop it with the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from sampan.node import namespaces, proc
from sampan.node.runtimes.base import RuntimeError_

HOLDER = "catatonit"


def _child_of(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return int(children[0]) if children else None
    return None


def _is_holder(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return HOLDER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


async def start(sandbox_dir: Path) -> None:
    """Starts the holder and mounts its PID namespace on ``sandbox_dir/pid``."""
    binary = shutil.which(HOLDER)
    if binary is None:
        raise RuntimeError_("shareProcessNamespace needs catatonit on the node (Debian package catatonit)")
    pidfile = sandbox_dir / "pid-holder"
    # sh records its pid, then becomes unshare (same pid), whose forked child is PID 1 of the
    # new namespace; setsid -f detaches it all from the agent, so init reaps it in the end.
    # --wd names the sandbox in unshare's command line (what stop() and leftover sweeps check).
    script = f'echo $$ > "{pidfile}"; exec unshare --pid --fork --kill-child --wd "{sandbox_dir}" "{binary}" -P'
    # No pipes: the detached holder would keep them open.
    done = await proc.run("setsid", "-f", "sh", "-c", script, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.code != 0:
        raise RuntimeError_(f"cannot start the pod's PID namespace holder (exit code {done.code})")
    holder = None
    for _ in range(200):  # a few milliseconds
        with contextlib.suppress(OSError, ValueError):
            holder = _child_of(int(pidfile.read_text()))
        if holder is not None and _is_holder(holder):
            break
        await asyncio.sleep(0.005)
    else:
        raise RuntimeError_("the pod's PID namespace holder did not start")
    await asyncio.to_thread(namespaces.keep, f"/proc/{holder}/ns/pid", sandbox_dir / "pid")


def stop(sandbox_dir: Path) -> None:
    """Stops the holder (its namespace goes with it) and unmounts the namespace file."""
    namespaces.remove(sandbox_dir / "pid")
    with contextlib.suppress(OSError, ValueError):
        unshare = int((sandbox_dir / "pid-holder").read_text())
        if str(sandbox_dir).encode() in Path(f"/proc/{unshare}/cmdline").read_bytes():  # not a reused pid
            os.kill(unshare, signal.SIGKILL)  # --kill-child takes the holder along

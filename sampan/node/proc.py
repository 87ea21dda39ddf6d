"""Running short helper programs (CNI plugins, runc, conmon, nft) from the event loop cheaply.

asyncio's subprocess support under uvloop forks the whole agent (libuv's fork, ~3 ms of page
table copying at the agent's size, more than the program itself often costs) and a plain
asyncio loop adds a waiter thread per child. Here ``subprocess.Popen`` starts the program
(CPython uses vfork: the cost no longer grows with the agent's memory) and the loop looks
at it with a backing-off timer: no thread, no fork of the agent, and no short-lived file
descriptors registered with the loop (libuv defers their removal: a closed and reused fd
number can then be watched wrongly).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import IO, Any

READ_SIZE = 65536
FIRST_LOOK = 0.0005  # seconds; doubled after each look up to LAST_LOOK
LAST_LOOK = 0.02


@dataclass
class Completed:
    code: int
    out: bytes
    err: bytes


def _drain(pipe: IO[bytes] | None, into: list[bytes]) -> None:
    """Reads what a non-blocking pipe holds now (so a chatty program never blocks on a full pipe)."""
    if pipe is None or pipe.closed:
        return
    try:
        while chunk := os.read(pipe.fileno(), READ_SIZE):
            into.append(chunk)
    except BlockingIOError:
        return
    pipe.close()  # EOF


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (OSError, ValueError):  # the program went (or we gave up on it) first
        pass


async def run(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None, cwd: str | None = None,
              timeout: float | None = None, stderr: IO[Any] | int | None = None, stdout: int | None = None,
              pass_fds: tuple[int, ...] = (), new_session: bool = False) -> Completed:
    """Runs ``argv`` to completion and returns its exit code and output (stdout and stderr are
    captured unless ``stdout``/``stderr`` say where they go). On ``timeout`` the program is
    killed and the code is -1. Raises OSError when it cannot be started."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE if stderr is None else stderr,
        env=env, cwd=cwd, pass_fds=pass_fds, start_new_session=new_session)
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
        feeding: asyncio.Future[None] | None = None
        if stdin is not None:
            if len(stdin) < 16384:  # fits the pipe at once
                _feed(proc, stdin)
            else:  # written while the output is read
                feeding = asyncio.ensure_future(asyncio.to_thread(_feed, proc, stdin))
        deadline = time.monotonic() + timeout if timeout is not None else None
        delay = FIRST_LOOK
        code: int | None = None
        while (code := proc.poll()) is None:
            _drain(proc.stdout, out)
            _drain(proc.stderr, err)
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                code = -1
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_LOOK)
        if feeding is not None:
            await feeding  # the program is gone: the writer got EPIPE or finished
        # Everything the program wrote is in the pipes now; a daemon it left holding them
        # must not keep us waiting for an EOF.
        _drain(proc.stdout, out)
        _drain(proc.stderr, err)
        return Completed(code, b"".join(out), b"".join(err))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        raise
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

"""Runs a function in a short-lived child Python process.

For work that needs a big library only now and then: the node agent's serving certificate
needs ``cryptography`` (about 8 MB of resident memory once imported, never given back) at
start and at renewal. In a child process that memory goes away with the child. Arguments
and the result (or the exception) travel as pickles over stdin/stdout.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
_CHILD = r"""
import importlib, pickle, sys
sys.path.insert(0, sys.argv[1])
target, args = pickle.load(sys.stdin.buffer)
module, _, name = target.partition(":")
try:
    result = (True, getattr(importlib.import_module(module), name)(*args))
except Exception as exc:
    try:
        pickle.dumps(exc)
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    result = (False, exc)
sys.stdout.buffer.write(pickle.dumps(result))
"""


class SubcallError(RuntimeError):
    pass


async def call(target: str, *args: Any, timeout: float = 120.0) -> Any:
    """``module:function(*args)`` in a child process; its exception is raised here (a child
    still running after ``timeout`` seconds is killed: TimeoutError)."""
    import pickle
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, _ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(pickle.dumps((target, args))), timeout)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0 or not out:
        raise SubcallError(f"{target} failed in a child process (exit {proc.returncode}): "
                           f"{err.decode(errors='replace').strip()[-500:]}")
    ok, value = pickle.loads(out)  # noqa: S301 - our own child's output
    if not ok:
        raise value
    return value

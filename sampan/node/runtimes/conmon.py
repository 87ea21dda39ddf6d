"""Containers monitored by conmon (the C container monitor Podman and CRI-O use).

conmon runs ``runc create`` with the container's stdio held by itself, writes the output
to the log file in the CRI format (``--log-path k8s-file:PATH``), detaches into its own
session as a child subreaper, and when the container ends writes the exit code to
``<dir>/exits/<id>`` (and an ``oom`` file in the bundle on an OOM kill). It reports the
container's pid (or runc's error) as one JSON line on the pipe named by ``_OCI_SYNCPIPE``;
the agent then runs ``runc start``. Attach goes through conmon's attach socket (a
SEQPACKET socket: stdin is written as is, output arrives prefixed by a stream byte) and
terminal resizes through its ``ctl`` fifo. A few MB per container instead of a Python
interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from sampan.apiserver.streaming.backend import StreamIO
from sampan.node import proc
from sampan.node.runtimes import common
from sampan.node.runtimes.base import RuntimeError_

SOCKET_DIR = Path("/run/sampan/conmon")  # short: an attach socket path must fit in 108 bytes
SYNC_TIMEOUT = 60.0
STDOUT, STDERR = 2, 3  # conmon's stream bytes on the attach socket
BUF = 8192  # conmon's stdio buffer size: one stdin message at most
_RUNC_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def socket_key(cdir: Path) -> str:
    """conmon's per-container socket name; unique per state dir and container id."""
    return hashlib.sha256(str(cdir).encode()).hexdigest()[:16]


def _runc_error(text: str) -> str:
    """runc's logfmt error line -> its message."""
    m = _RUNC_MSG.search(text)
    if not m:
        return text.strip()
    with contextlib.suppress(ValueError):
        return str(json.loads(f'"{m.group(1)}"'))
    return m.group(1)


async def _read_sync(fd: int) -> dict[str, Any] | None:
    """conmon's first line on its sync pipe (a JSON report); takes ownership of ``fd``.

    Read by polling the non-blocking pipe, not through the loop: uvloop's connect_read_pipe
    closes a pipe's descriptor twice (once through libuv, once through the file object), and
    the second close can hit a descriptor another thread just opened under the same number;
    libuv then aborts the process when epoll reports it.
    """
    os.set_blocking(fd, False)
    data = b""
    deadline = time.monotonic() + SYNC_TIMEOUT
    delay = 0.0005
    try:
        while b"\n" not in data:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)
                continue
            if not chunk:
                break  # conmon closed it
            data += chunk
    finally:
        os.close(fd)
    line = data.split(b"\n", 1)[0]
    with contextlib.suppress(ValueError):
        report = json.loads(line) if line else None
        return report if isinstance(report, dict) else None
    return None


def _prune(socket_dir: Path) -> None:
    """Drops conmon's links to container directories that are gone (removed without us)."""
    with contextlib.suppress(OSError):
        for link in socket_dir.iterdir():
            if link.is_symlink() and not link.exists():
                with contextlib.suppress(OSError):
                    link.unlink()


def _alive_not_zombie(pid: int) -> bool:
    fields = common.proc_stat(pid)
    return fields is not None and fields[0] != "Z"


async def _start_via_fifo(fifo: Path, pid: int) -> bool:
    """What `runc start` does, without starting runc: the created container's init waits to
    open the exec fifo for writing; a reader lets it write one byte and exec the process,
    and the fifo's removal marks the container as running. False when the init is gone."""
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        deadline = time.monotonic() + SYNC_TIMEOUT
        delay = 0.0005
        while True:
            try:
                if os.read(fd, 16):
                    break  # the init has its go: it execs the container's process now
            except BlockingIOError:
                pass  # opened by the init, byte not written yet
            if not _alive_not_zombie(pid) or time.monotonic() > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()
    return True


async def start(conmon: str, runc: list[str], cdir: Path, container_id: str, log_path: Path, *,
                stdin: bool, tty: bool, socket_dir: Path, runtime_root: Path | None = None) -> dict[str, Any]:
    """Creates the container under a new conmon and starts it; returns started.json's data.
    ``runtime_root``: runc's state directory, where its exec fifo lets us start the container."""
    runc_binary, *runc_args = runc
    socket_dir.mkdir(parents=True, exist_ok=True)
    _prune(socket_dir)
    (cdir / "exits").mkdir(exist_ok=True)
    argv = [conmon, "--cid", container_id, "--cuuid", socket_key(cdir), "--name", container_id,
            "--runtime", runc_binary, "--bundle", str(cdir),
            "--container-pidfile", str(cdir / "init.pid"), "--conmon-pidfile", str(cdir / "conmon.pid"),
            "--log-path", f"k8s-file:{log_path}", "--exit-dir", str(cdir / "exits"),
            "--socket-dir-path", str(socket_dir), "--log-level", "error"]
    for arg in runc_args:
        argv += ["--runtime-arg", arg]
    if stdin:
        argv += ["--stdin", "--leave-stdin-open"]  # stdin stays open between attach sessions
    if tty:
        argv.append("--terminal")
    r, w = os.pipe()
    try:
        with open(cdir / "conmon.log", "ab") as errlog:
            # conmon forks its daemon and returns at once.
            await proc.run(*argv, stdout=subprocess.DEVNULL, stderr=errlog, cwd=str(cdir),
                           env={**os.environ, "_OCI_SYNCPIPE": str(w)}, pass_fds=(w,), new_session=True)
    except BaseException as exc:
        os.close(r)
        if isinstance(exc, OSError):
            raise RuntimeError_(f"cannot run {conmon}: {exc.strerror}") from exc
        raise
    finally:
        os.close(w)
    report = await _read_sync(r)
    pid = (report or {}).get("pid", (report or {}).get("data"))
    if not isinstance(pid, int) or pid <= 0:
        detail = str((report or {}).get("message") or "")
        if not detail:
            with contextlib.suppress(OSError):
                detail = (cdir / "conmon.log").read_text()[-2000:]
        raise RuntimeError_(_runc_error(detail) or "conmon failed to create the container")
    started_at = time.time()  # the process runs from here on: a quick one exits before `runc start` returns
    fifo = runtime_root / container_id / "exec.fifo" if runtime_root else None
    if fifo is None or not fifo.exists() or not await _start_via_fifo(fifo, pid):
        done = await proc.run(*runc, "start", container_id, stdout=subprocess.DEVNULL)
        if done.code != 0:
            raise RuntimeError_(_runc_error(done.err.decode(errors="replace")) or "runc start failed")
    conmon_pid = None
    with contextlib.suppress(OSError, ValueError):
        conmon_pid = int((cdir / "conmon.pid").read_text().strip())
    return {"pid": pid, "started_at": started_at, "conmon_pid": conmon_pid}


def alive(cdir: Path) -> bool:
    pid = (common.read_json(cdir / "started.json") or {}).get("conmon_pid")
    if not isinstance(pid, int):
        return False
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"conmon")
    except OSError:
        return False


def exit_file(cdir: Path, container_id: str) -> Path:
    return cdir / "exits" / container_id


def collect_exit(cdir: Path, container_id: str, oom_check: Any) -> bool:
    """Turns conmon's exit file into exit.json (as the shim writes it); True once exited.
    `oom_check()` asks the cgroup, for kernels where conmon saw no OOM event."""
    if (cdir / "exit.json").exists():
        return True
    path = exit_file(cdir, container_id)
    try:
        text, finished = path.read_text().strip(), path.stat().st_mtime
    except OSError:
        return False
    try:
        code = int(text)
    except ValueError:
        code = 255
    oom = (cdir / "oom").exists() or bool(oom_check())
    with contextlib.suppress(OSError):
        common.write_json(cdir / "exit.json", {"exit_code": code, "finished_at": finished, "oom_killed": oom})
    return True


async def _resize(cdir: Path, io: StreamIO) -> None:
    assert io.resize is not None
    async for width, height in io.resize:
        with contextlib.suppress(OSError):
            fd = os.open(cdir / "ctl", os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, f"1 {height} {width}\n".encode())
            finally:
                os.close(fd)


async def _send_stdin(sock: socket.socket, src: asyncio.StreamReader) -> None:
    loop = asyncio.get_running_loop()
    # End of the client's stdin leaves the container's stdin open, like the shim's fifo.
    with contextlib.suppress(OSError):
        while chunk := await src.read(BUF):
            await loop.sock_sendall(sock, chunk)


async def attach(cdir: Path, meta: dict[str, Any], io: StreamIO) -> None:
    """Streams the container's output (and client stdin into it) until conmon closes the socket."""
    path = Path(meta.get("socket_dir") or SOCKET_DIR) / meta["socket_key"] / "attach"
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, str(path))
    except OSError as exc:
        sock.close()
        if (cdir / "exits" / meta["id"]).exists():
            return
        raise RuntimeError_(f"cannot attach to container {meta['id']}: {exc.strerror}") from exc
    tasks = []
    if io.stdin is not None and meta.get("stdin"):
        tasks.append(asyncio.create_task(_send_stdin(sock, io.stdin)))
    if io.resize is not None and meta.get("tty"):
        tasks.append(asyncio.create_task(_resize(cdir, io)))
    try:
        while True:
            try:
                msg = await loop.sock_recv(sock, BUF + 1)
            except OSError:
                break
            if not msg:
                break
            out = io.stderr if msg[0] == STDERR and not io.tty else io.stdout
            if out is not None and len(msg) > 1:
                await out(msg[1:])
    finally:
        for t in tasks:
            t.cancel()
        sock.close()

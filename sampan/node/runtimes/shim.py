"""The per-container shim: runs one container and outlives the agent.

``python -m sampan.node.runtimes.shim SPEC.json`` forks into its own session, becomes a
child subreaper (so a runc container's init is re-parented to it and it can collect the
exit status), starts the container with pipes (or a pty) as its stdio, reports
``{"ok": true, "pid": N}`` or ``{"ok": false, "error": "..."}`` as one JSON line on
stdout, then copies the container's output into the log file in CRI format
("<RFC3339Nano> stdout|stderr F|P <text>") until it exits, and finally writes exit.json
(exit code, finish time, OOM kill). The agent reads those files; it holds no pipe.

Spec keys: mode ("runc" | "exec"), dir, log_path, stdin, tty, cgroup (for the OOM check),
runc mode: runc (argv prefix incl. --root), id; exec mode: args, env, cwd, uid, gid, groups.
"""

from __future__ import annotations

import ctypes
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
MAX_LINE = 16 * 1024
DRAIN_SECONDS = 2.0
_KEEP: list[subprocess.Popen[bytes]] = []


def rfc3339nano(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class LogWriter:
    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.lock = threading.Lock()

    def line(self, stream: str, tag: str, text: bytes) -> None:
        record = f"{rfc3339nano(time.time_ns())} {stream} {tag} ".encode() + text + b"\n"
        with self.lock:
            os.write(self.fd, record)

    def forward(self, fd: int, stream: str, tty: bool = False) -> None:
        """Copies one output stream line by line until EOF (or EIO, when a pty's slave closes);
        a terminal ends lines with CR LF, the log with LF only."""
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while (nl := buf.find(b"\n")) >= 0:
                self.line(stream, "F", buf[:nl].rstrip(b"\r") if tty else buf[:nl])
                buf = buf[nl + 1:]
            while len(buf) >= MAX_LINE:
                self.line(stream, "P", buf[:MAX_LINE])
                buf = buf[MAX_LINE:]
        if buf:
            self.line(stream, "F", buf)
        os.close(fd)


def process_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a process, to tell it from a later one with the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _copy(src: int, dst: int) -> None:
    while True:
        try:
            chunk = os.read(src, 65536)
            if not chunk:
                return
            os.write(dst, chunk)
        except OSError:
            return


def _exit_code(status: int) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 255


def _report(data: dict[str, Any]) -> None:
    try:
        os.write(1, (json.dumps(data) + "\n").encode())
    except OSError:
        pass
    # The agent stops reading after this line; nothing else may block on that pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _stdio(spec: dict[str, Any], cdir: Path) -> tuple[int, int, int, list[tuple[int, str]], list[int]]:
    """(stdin, stdout, stderr) for the container, output readers, fds to close after start."""
    readers: list[tuple[int, str]] = []
    if spec.get("tty"):
        master, slave = pty.openpty()
        out = err = slave
        readers.append((master, "stdout"))
        close = [slave]
    else:
        out_r, out = os.pipe()
        err_r, err = os.pipe()
        readers += [(out_r, "stdout"), (err_r, "stderr")]
        close = [out, err]
    if spec.get("stdin"):
        fifo = cdir / "stdin"
        if not fifo.exists():
            os.mkfifo(fifo, 0o600)
        # Read-write so the container never sees EOF between two attach sessions.
        fin = os.open(fifo, os.O_RDWR)
        if spec.get("tty"):
            threading.Thread(target=_copy, args=(fin, readers[0][0]), daemon=True).start()
            stdin = out
        else:
            stdin = fin
            close.append(fin)
    elif spec.get("tty"):
        stdin = out  # a terminal is all three of a process's stdio, as with containerd
    else:
        stdin = os.open(os.devnull, os.O_RDONLY)
        close.append(stdin)
    return stdin, out, err, readers, close


def _start_runc(spec: dict[str, Any], cdir: Path, stdio: tuple[int, int, int], err_r: int) -> int:
    runc = list(spec["runc"])
    pid_file = cdir / "init.pid"
    create = subprocess.run([*runc, "create", "--bundle", str(cdir), "--pid-file", str(pid_file), spec["id"]],
                            stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])
    if create.returncode != 0:
        message = b""
        os.set_blocking(err_r, False)
        try:
            message = os.read(err_r, 65536)
        except OSError:
            pass
        raise RuntimeError(message.decode(errors="replace").strip() or f"runc create exited with {create.returncode}")
    start = subprocess.run([*runc, "start", spec["id"]], stdin=subprocess.DEVNULL, capture_output=True)
    if start.returncode != 0:
        subprocess.run([*runc, "delete", "--force", spec["id"]], capture_output=True)
        raise RuntimeError(start.stderr.decode(errors="replace").strip() or "runc start failed")
    return int(pid_file.read_text().strip())


def _start_exec(spec: dict[str, Any], stdio: tuple[int, int, int]) -> int:
    cgroup_dirs = [Path(d) for d in spec.get("cgroup_dirs") or []]

    adj = spec.get("oom_score_adj")

    def join_cgroup() -> None:
        if isinstance(adj, int):
            try:
                # Only raise it: a child may not go below the agent's value without privileges.
                if adj >= int(Path("/proc/self/oom_score_adj").read_text()):
                    Path("/proc/self/oom_score_adj").write_text(str(adj))
            except (OSError, ValueError):
                pass
        for d in cgroup_dirs:
            try:
                (d / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass

    kwargs: dict[str, Any] = {}
    if spec.get("uid") is not None:
        kwargs["user"] = spec["uid"]
    if spec.get("gid") is not None:
        kwargs["group"] = spec["gid"]
    if spec.get("groups"):
        kwargs["extra_groups"] = spec["groups"]
    proc = subprocess.Popen(spec["args"], stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], cwd=spec.get("cwd") or None,
                            env=spec.get("env"), start_new_session=True, preexec_fn=join_cgroup, **kwargs)
    # A collected Popen polls (and so reaps) its child; _wait must be the one to reap it.
    _KEEP.append(proc)
    return proc.pid


def _wait(pid: int) -> int:
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if got == pid:
            return _exit_code(status)
    # Not our child after all (no subreaper support): wait for it to disappear.
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    return 255


def _oom_killed(cgroup: str) -> bool:
    if not cgroup:
        return False
    try:
        from sampan.node.cgroups import Cgroups
        return Cgroups().was_oom_killed(cgroup)
    except Exception:  # noqa: BLE001 - a missing cgroup only means no OOM information
        return False


def run(spec: dict[str, Any]) -> int:
    cdir = Path(spec["dir"])
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        log = LogWriter(spec["log_path"])
        stdin, out, err, readers, close = _stdio(spec, cdir)
        err_r = readers[-1][0]  # stderr, or the terminal: where runc's own errors go
        if spec["mode"] == "runc":
            pid = _start_runc(spec, cdir, (stdin, out, err), err_r)
        else:
            pid = _start_exec(spec, (stdin, out, err))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the agent as text
        _report({"ok": False, "error": str(exc) or type(exc).__name__})
        return 1
    for fd in close:
        os.close(fd)
    started = time.time()
    write_json(cdir / "started.json", {"pid": pid, "started_at": started, "shim_pid": os.getpid(),
                                           "start_ticks": process_start_time(pid)})
    _report({"ok": True, "pid": pid, "started_at": started})
    tty = bool(spec.get("tty"))
    threads = [threading.Thread(target=log.forward, args=(*r, tty), daemon=True) for r in readers]
    for t in threads:
        t.start()
    code = _wait(pid)
    finished = time.time()
    # Let the last output reach the log before the exit is visible; a raw container's
    # leftover children may keep the pipes open, so don't wait for them forever.
    deadline = time.monotonic() + DRAIN_SECONDS
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    try:
        write_json(cdir / "exit.json", {"exit_code": code, "finished_at": finished,
                                        "oom_killed": _oom_killed(spec.get("cgroup", ""))})
    except OSError:
        pass  # removed while it ran
    return 0


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    # Detach: the first process exits at once, so the agent never has to reap the shim.
    if os.fork():
        os._exit(0)
    os.setsid()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os._exit(run(spec))


if __name__ == "__main__":
    main()

"""Agent-side helpers shared by the oci and raw runtimes: the per-container directory
(meta.json, started.json, exit.json written by the shim, or from conmon's files by the oci
runtime), starting the shim, and attach to a shim's container (which follows the CRI log
and writes into the shim's stdin fifo)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import sampan
from sampan.apiserver.streaming.backend import StreamIO
from sampan.node.runtimes.base import ContainerConfig, ContainerState, RuntimeError_

SHIM_TIMEOUT = 60.0


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def meta_for(config: ContainerConfig, **extra: Any) -> dict[str, Any]:
    return {"id": config.id, "pod_uid": config.pod_uid, "name": config.name, "labels": config.labels,
            "log_path": str(config.log_path), "tty": config.tty, "stdin": config.stdin,
            "created_at": time.time(), **extra}


def state_from_files(cdir: Path, meta: dict[str, Any]) -> ContainerState:
    """What the shim's files say; the caller refines `running` with a live check."""
    st = ContainerState(id=meta["id"], pod_uid=meta.get("pod_uid", ""), name=meta.get("name", ""),
                        status="created", labels=dict(meta.get("labels") or {}))
    started = read_json(cdir / "started.json")
    if started:
        st.status, st.pid, st.started_at = "running", started.get("pid"), started.get("started_at")
    exited = read_json(cdir / "exit.json")
    if exited:
        st.status, st.exit_code = "exited", exited.get("exit_code")
        st.finished_at, st.oom_killed = exited.get("finished_at"), bool(exited.get("oom_killed"))
    return st


async def run_shim(cdir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Starts the shim for one container and returns its report (pid, started_at)."""
    spec_path = cdir / "shim.json"
    write_json(spec_path, spec)
    env = dict(os.environ)
    pkg_root = str(Path(sampan.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(cdir / "shim.log", "ab") as shim_log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sampan.node.runtimes.shim", str(spec_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=shim_log,
            cwd="/", env=env, start_new_session=True)
    assert proc.stdout is not None
    line = b""
    with contextlib.suppress(asyncio.TimeoutError):
        line = await asyncio.wait_for(proc.stdout.readline(), SHIM_TIMEOUT)
        # The shim points its stdout elsewhere right after reporting: read to EOF so the
        # pipe (and its transport) closes now.
        await asyncio.wait_for(proc.stdout.read(), 10.0)
    await proc.wait()
    report = None
    with contextlib.suppress(ValueError):
        report = json.loads(line) if line else None
    if not isinstance(report, dict):
        detail = ""
        with contextlib.suppress(OSError):
            detail = (cdir / "shim.log").read_text()[-2000:].strip()
        raise RuntimeError_(f"container shim failed to start: {detail or 'no report'}")
    if not report.get("ok"):
        raise RuntimeError_(str(report.get("error") or "container failed to start"))
    return report


def shim_alive(cdir: Path) -> bool:
    started = read_json(cdir / "started.json") or {}
    pid = started.get("shim_pid")
    if not isinstance(pid, int):
        return False
    try:
        return b"sampan.node.runtimes.shim" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def settle_exit(cdir: Path) -> bool:
    """True once exit.json exists; waits a little only while the shim may still write it."""
    if (cdir / "exit.json").exists():
        return True
    return shim_alive(cdir) and await wait_exited(cdir, 3.0)


async def wait_exited(cdir: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not (cdir / "exit.json").exists():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _decode_cri(line: bytes) -> tuple[str, bytes] | None:
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stream, tag = parts[1].decode(errors="replace"), parts[2]
    text = parts[3] if len(parts) > 3 else b""
    return stream, text + (b"\n" if tag == b"F" else b"")


async def attach_via_log(cdir: Path, meta: dict[str, Any], io: StreamIO) -> int:
    """Streams new log output (and client stdin into the stdin fifo) until the container exits."""
    log_path = Path(meta["log_path"])
    if (cdir / "exit.json").exists():
        exited = read_json(cdir / "exit.json") or {}
        return int(exited.get("exit_code") or 0)
    feeder = None
    if io.stdin is not None and meta.get("stdin"):
        feeder = asyncio.create_task(_feed_fifo(cdir / "stdin", io.stdin))
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            pending = b""
            while True:
                done = (cdir / "exit.json").exists()
                chunk = f.read(65536)
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        decoded = _decode_cri(line)
                        if decoded is None:
                            continue
                        stream, text = decoded
                        out = io.stderr if stream == "stderr" and not io.tty else io.stdout
                        if out is not None:
                            await out(text)
                    continue
                if done or not cdir.exists():
                    break
                await asyncio.sleep(0.05)
    except OSError as exc:
        raise RuntimeError_(f"cannot read the output of container {meta['id']}: {exc.strerror}") from exc
    finally:
        if feeder:
            feeder.cancel()
    exited = read_json(cdir / "exit.json") or {}
    return int(exited.get("exit_code") or 0)


async def _feed_fifo(fifo: Path, src: asyncio.StreamReader) -> None:
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        while chunk := await src.read(32 * 1024):
            while chunk:
                try:
                    n = os.write(fd, chunk)
                    chunk = chunk[n:]
                except BlockingIOError:
                    await asyncio.sleep(0.02)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)



SANDBOXES = "_sandboxes"


def proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name ([0] state, [1] parent pid), or None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 1 else None


class StateDirLayout:
    """The on-disk layout both runtimes keep below ``state_dir``: a directory per container
    (meta.json, exit files, log) and ``_sandboxes/<pod uid>`` per pod. Ids are checked so a
    bad one can never name a path outside it."""

    state_dir: Path

    @functools.cached_property
    def _owners(self) -> dict[tuple[str, int], str]:
        """Whose a container directory is never changes: remembered per directory (name and
        inode), so deleting many pods reads each meta.json once, not once per pod."""
        return {}

    @functools.cached_property
    def _owners_lock(self) -> threading.Lock:
        return threading.Lock()  # the scans run in worker threads, several at once

    def _cdir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith((".", "_")):
            raise RuntimeError_(f"invalid container id {container_id!r}")
        return self.state_dir / container_id

    def _sdir(self, pod_uid: str) -> Path:
        if not pod_uid or "/" in pod_uid or pod_uid.startswith("."):
            raise RuntimeError_(f"invalid pod uid {pod_uid!r}")
        return self.state_dir / SANDBOXES / pod_uid

    def _meta(self, container_id: str) -> dict[str, Any]:
        meta = read_json(self._cdir(container_id) / "meta.json")
        if meta is None:
            raise RuntimeError_(f"container {container_id} not found")
        return meta

    async def state(self, container_id: str) -> ContainerState:
        raise NotImplementedError

    async def pod_container_ids(self, pod_uid: str) -> list[str]:
        """The pod's containers, from their meta.json alone: unlike list_containers no runtime
        call per container, which made deleting many pods quadratic."""

        owners, lock = self._owners, self._owners_lock

        def scan() -> list[str]:
            with lock:
                return scan_unlocked()

        def scan_unlocked() -> list[str]:
            found, seen = [], set()
            try:
                entries = list(os.scandir(self.state_dir))
            except FileNotFoundError:
                entries = []
            for entry in entries:
                if entry.name.startswith(("_", ".")):
                    continue
                key = (entry.name, entry.inode())
                seen.add(key)
                owner = owners.get(key)
                if owner is None:
                    meta = read_json(Path(entry.path) / "meta.json")
                    if not meta:
                        continue  # being created: not remembered yet
                    owner = owners[key] = str(meta.get("pod_uid", ""))
                if owner == pod_uid:
                    found.append(entry.name)
            for key in set(owners) - seen:
                owners.pop(key, None)
            return sorted(found)

        return await asyncio.to_thread(scan)

    async def list_containers(self) -> list[ContainerState]:
        out: list[ContainerState] = []
        for entry in sorted(self.state_dir.iterdir()) if self.state_dir.exists() else []:
            if entry.name.startswith(("_", ".")) or not (entry / "meta.json").exists():
                continue
            with contextlib.suppress(RuntimeError_):
                out.append(await self.state(entry.name))
        return out

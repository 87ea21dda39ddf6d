"""Containers through an OCI runtime binary (runc, or crun where it works).

Each container has a bundle directory ``<state_dir>/<id>/`` with config.json (written
here), meta.json (what the agent needs back: pod, name, labels, log path, cgroup, monitor),
started.json and exit.json. A per-container monitor holds the container's stdio, writes the
CRI log and records the exit, so containers and their logs survive the agent: conmon
(conmon.py, a small C program) when it is installed, else the Python shim (shim.py, about
ten times the memory). meta.json says which one a container has, so an agent restarted
with the other choice still reads it.

A sandbox is ``<state_dir>/_sandboxes/<pod uid>/`` holding persistent IPC and UTS (and,
without a pod network, network) namespaces bind-mounted on files, plus the pod's hosts,
hostname and resolv.conf; every container of the pod joins those namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sampan.apiserver.streaming.backend import LocalProcessBackend, StreamIO, run_in_pty
from sampan.node import namespaces, proc
from sampan.node.cgroups import Cgroups
from sampan.node.images.mounts import mount_points
from sampan.node.runtimes import common, conmon, pidholder
from sampan.node.runtimes.base import (
    ContainerConfig, ContainerState, ContainerStats, RuntimeError_, SandboxConfig,
)
from sampan.node.runtimes.spec import oci_spec

SANDBOXES = common.SANDBOXES
DEFAULT_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


async def _run(*argv: str, timeout: float = 60.0) -> tuple[int, str, str]:
    done = await proc.run(*argv, timeout=timeout)
    if done.code == -1:
        return -1, "", f"{argv[0]} timed out"
    return done.code, done.out.decode(errors="replace"), done.err.decode(errors="replace")


async def _exec_tty(argv: list[str], io: StreamIO) -> int:
    """`runc exec -t` under a pty of ours: runc makes the container's terminal and copies to
    ours; after a resize runc needs a SIGWINCH to copy the new size to the container's."""

    def failed(exc: OSError) -> Exception:
        return RuntimeError_(f"cannot run {argv[0]}: {exc.strerror}")

    return await run_in_pty(argv, io, failed, signal_resize=True)


class OciRuntime(common.StateDirLayout):
    name = "oci"
    isolates = True

    def __init__(self, state_dir: Path, binary: str = "runc", runc_root: Path = Path("/run/sampan/runc"),
                 cgroups: Cgroups | None = None, conmon: str | None = "auto",
                 socket_dir: Path = conmon.SOCKET_DIR) -> None:
        """`conmon`: "auto" finds it on PATH, None uses the Python shim, else its path."""
        self.state_dir = Path(state_dir)
        self.binary = binary
        self.runc_root = Path(runc_root)
        self.cgroups = cgroups or Cgroups()
        self.conmon = shutil.which("conmon") if conmon == "auto" else conmon
        self.socket_dir = Path(socket_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    # -- helpers -------------------------------------------------------------------------

    def _runc(self) -> list[str]:
        return [self.binary, "--root", str(self.runc_root)]

    async def _runc_status(self, container_id: str) -> str | None:
        code, out, _ = await _run(*self._runc(), "state", container_id)
        if code != 0:
            return None
        with contextlib.suppress(ValueError):
            return str(json.loads(out).get("status"))
        return None

    # -- sandboxes -----------------------------------------------------------------------

    async def create_sandbox(self, config: SandboxConfig) -> None:
        sdir = self._sdir(config.pod_uid)
        sdir.mkdir(parents=True, exist_ok=True)
        common.write_json(sdir / "sandbox.json", asdict(config))
        hostname = (config.hostname or config.name)[:63]
        (sdir / "hostname").write_text(hostname + "\n")
        hosts = config.hosts or DEFAULT_HOSTS
        (sdir / "hosts").write_text(hosts if hosts.endswith("\n") else hosts + "\n")
        dns = config.dns_config
        if not dns:
            with contextlib.suppress(OSError):
                dns = Path("/etc/resolv.conf").read_text()
        (sdir / "resolv.conf").write_text(dns)
        kinds = ([] if config.host_ipc else ["ipc"]) + ["uts"] + (
            [] if config.host_network or config.netns_path else ["net"])
        mounted = mount_points()
        shared_pid = ["pid"] if config.share_process_namespace else []
        if all(str(sdir / k) in mounted for k in kinds + shared_pid):
            return  # already made (agent restart)
        self._unmount_sandbox(sdir)  # half made before
        try:
            await namespaces.create({k: sdir / k for k in kinds}, hostname=hostname)
            if shared_pid:
                await pidholder.start(sdir)
        except OSError as exc:
            self._unmount_sandbox(sdir)
            raise RuntimeError_(f"cannot create the namespaces of pod {config.namespace}/{config.name}: {exc}") from exc
        except RuntimeError_:
            self._unmount_sandbox(sdir)
            raise

    @staticmethod
    def _unmount_sandbox(sdir: Path) -> None:
        for k in ("ipc", "uts", "net"):
            namespaces.remove(sdir / k)
        pidholder.stop(sdir)

    async def remove_sandbox(self, pod_uid: str) -> None:
        for cid in await self.pod_container_ids(pod_uid):
            await self.remove_container(cid)
        sdir = self._sdir(pod_uid)
        self._unmount_sandbox(sdir)
        await asyncio.to_thread(shutil.rmtree, sdir, True)

    def _sandbox(self, pod_uid: str) -> dict[str, Any]:
        data = common.read_json(self._sdir(pod_uid) / "sandbox.json")
        if data is None:
            raise RuntimeError_(f"the sandbox of pod {pod_uid} does not exist")
        return data

    # -- containers ----------------------------------------------------------------------

    def cgroup_path(self, sandbox: SandboxConfig, container_id: str) -> str:
        parent = sandbox.cgroup_parent.strip("/") or self.cgroups.root_name
        return f"/{parent}/{container_id}"

    async def start_container(self, sandbox: SandboxConfig, config: ContainerConfig) -> ContainerState:
        cdir = self._cdir(config.id)
        sdir = self._sdir(sandbox.pod_uid)
        self._sandbox(sandbox.pod_uid)
        # runc and crun keep a directory per container under their root: no `runc state` exec needed.
        if (cdir / "started.json").exists() or (self.runc_root / config.id).exists():
            raise RuntimeError_(f"container {config.id} already exists")
        await asyncio.to_thread(shutil.rmtree, cdir, True)
        cdir.mkdir(parents=True)
        cgroup = self.cgroup_path(sandbox, config.id)
        swap = self.cgroups.mode != "v2" and self.cgroups.swap_accounted()
        spec = oci_spec(sandbox, config, sdir, cgroup, swap=swap, terminal=self.conmon is not None)
        (cdir / "config.json").write_text(json.dumps(spec))  # no indent: the C encoder
        extra: dict[str, Any] = {"monitor": "shim"}
        if self.conmon:
            extra = {"monitor": "conmon", "socket_dir": str(self.socket_dir), "socket_key": conmon.socket_key(cdir)}
        common.write_json(cdir / "meta.json", common.meta_for(config, cgroup=cgroup, runtime=self.binary, **extra))
        config.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.conmon:
                started = await conmon.start(self.conmon, self._runc(), cdir, config.id, config.log_path,
                                             stdin=config.stdin, tty=config.tty, socket_dir=self.socket_dir,
                                             runtime_root=self.runc_root)
                common.write_json(cdir / "started.json", started)
            else:
                await common.run_shim(cdir, {
                    "mode": "runc", "runc": self._runc(), "id": config.id, "dir": str(cdir),
                    "log_path": str(config.log_path), "stdin": config.stdin, "tty": config.tty, "cgroup": cgroup,
                })
        except Exception as exc:
            await self.remove_container(config.id)  # a failed start leaves nothing behind
            if isinstance(exc, RuntimeError_):
                raise
            raise RuntimeError_(f"cannot start container {config.id}: {exc}") from exc
        if self.conmon:  # just started: the files say running (or exited), no `runc state` needed
            meta = self._meta(config.id)
            self._collect(config.id, meta)
            return common.state_from_files(cdir, meta)
        return await self.state(config.id)

    def _monitored_pid(self, container_id: str, meta: dict[str, Any]) -> int | None:
        """The container's init pid while it runs under its conmon (conmon, a subreaper, is its
        parent: a pid reused by another process has another parent), else None."""
        if meta.get("monitor") != "conmon":
            return None
        started = common.read_json(self._cdir(container_id) / "started.json") or {}
        pid, monitor = started.get("pid"), started.get("conmon_pid")
        if not isinstance(pid, int) or not isinstance(monitor, int):
            return None
        fields = common.proc_stat(pid)
        return pid if fields is not None and fields[0] != "Z" and fields[1] == str(monitor) else None

    async def _kill(self, container_id: str, meta: dict[str, Any], sig: signal.Signals) -> None:
        """Signals the container's init directly (what `runc kill` does, without starting it);
        through a pidfd checked after opening, so a reused pid is never signalled."""
        pid = self._monitored_pid(container_id, meta)
        if pid is not None:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    if self._monitored_pid(container_id, meta) == pid:
                        signal.pidfd_send_signal(fd, sig)
                        return
                except ProcessLookupError:
                    return  # just exited
                except OSError:
                    pass
                finally:
                    os.close(fd)
        await _run(*self._runc(), "kill", container_id, sig.name.removeprefix("SIG"))

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        meta = self._meta(container_id)
        # The files decide (no `runc state` exec); a kill of an already exited one is harmless.
        if self._collect(container_id, meta) or common.state_from_files(self._cdir(container_id), meta).status != "running":
            return
        await self._kill(container_id, meta, signal.SIGTERM)
        if await self._wait_exited(container_id, max(0.0, grace_seconds)):
            return
        await self._kill(container_id, meta, signal.SIGKILL)
        if not await self._wait_exited(container_id, 30.0) and await self._runc_status(container_id) == "running":
            raise RuntimeError_(f"container {container_id} did not stop after SIGKILL")

    async def remove_container(self, container_id: str) -> None:
        cdir = self._cdir(container_id)
        meta = common.read_json(cdir / "meta.json") or {}
        state_dir = self.runc_root / container_id
        if (meta.get("monitor") == "conmon" and self._collect(container_id, meta)
                and self._monitored_pid(container_id, meta) is None):
            # Exited, and conmon reaped it (every process of its pid namespace went with it):
            # what `runc delete` does for a stopped container is its state directory and
            # cgroups (removed below), without starting runc.
            await asyncio.to_thread(shutil.rmtree, state_dir, True)
        else:
            await _run(*self._runc(), "delete", "--force", container_id)
        if meta.get("monitor") == "conmon":
            # Let conmon record the exit and go before its directory does.
            deadline = time.monotonic() + 5.0
            while conmon.alive(cdir) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            with contextlib.suppress(OSError):
                (Path(meta.get("socket_dir") or self.socket_dir) / meta.get("socket_key", "-")).unlink()
        if meta.get("cgroup"):
            await asyncio.to_thread(self.cgroups.remove, meta["cgroup"])
        await asyncio.to_thread(shutil.rmtree, cdir, True)

    def _collect(self, container_id: str, meta: dict[str, Any]) -> bool:
        """True once the container's exit is recorded in exit.json."""
        cdir = self._cdir(container_id)
        if meta.get("monitor") != "conmon":
            return (cdir / "exit.json").exists()
        return conmon.collect_exit(cdir, container_id, lambda: self.cgroups.was_oom_killed(meta.get("cgroup", "")))

    async def _wait_exited(self, container_id: str, timeout: float) -> bool:
        meta = self._meta(container_id)
        deadline = time.monotonic() + timeout
        delay = 0.005  # most containers go at once on SIGTERM: look again soon, then less often
        while not self._collect(container_id, meta):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True

    async def state(self, container_id: str) -> ContainerState:
        cdir = self._cdir(container_id)
        meta = self._meta(container_id)
        self._collect(container_id, meta)
        st = common.state_from_files(cdir, meta)
        if st.status != "running" or self._monitored_pid(container_id, meta) is not None:
            return st  # exited, or its process is there under its conmon: no `runc state` needed
        status = await self._runc_status(container_id)
        if status in ("running", "paused", "created"):
            return st
        # Stopped (or gone) but no exit record yet: the monitor is writing it, or died.
        if meta.get("monitor") == "conmon":
            settled = conmon.alive(cdir) and await self._wait_exited(container_id, 3.0)
        else:
            settled = await common.settle_exit(cdir)
        if settled:
            return common.state_from_files(cdir, meta)
        st.status = "unknown"
        return st

    async def exec(self, container_id: str, command: list[str], io: StreamIO) -> int:
        st = await self.state(container_id)
        if st.status != "running":
            raise RuntimeError_(f"container {container_id} is not running")
        if not command:
            raise RuntimeError_("command is required")
        if io.tty:
            return await _exec_tty([*self._runc(), "exec", "-t", container_id, *command], io)
        # runc copies between its own stdio and the process: the backend's pipes do the rest.
        return await LocalProcessBackend()._run([*self._runc(), "exec", container_id, *command], io)

    async def attach(self, container_id: str, io: StreamIO) -> int:
        meta = self._meta(container_id)
        if meta.get("monitor") != "conmon":
            return await common.attach_via_log(self._cdir(container_id), meta, io)
        if (await self.state(container_id)).status == "running":
            await conmon.attach(self._cdir(container_id), meta, io)
        # The socket closes when conmon goes, just before it records the exit.
        await self._wait_exited(container_id, 5.0)
        return int((await self.state(container_id)).exit_code or 0)

    async def stats(self, container_id: str) -> ContainerStats:
        meta = self._meta(container_id)
        return await asyncio.to_thread(self.cgroups.stats, meta.get("cgroup", ""))


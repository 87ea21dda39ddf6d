"""Containers as plain host processes: no isolation, no image root filesystem.

Each container is started by the same shim as the OCI runtime (own session, cwd/env/args
from the config, output written to the CRI log, exit recorded in exit.json), so it keeps
running when the agent stops. Limits apply through a cgroup per container when the agent
can manage cgroups. Exec runs the command on the host with the container's env and cwd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import asdict
from pathlib import Path

from sampan.apiserver.streaming.backend import LocalProcessBackend, StreamIO
from sampan.node.cgroups import Cgroups
from sampan.node.runtimes import common
from sampan.node.runtimes.base import (
    ContainerConfig, ContainerState, ContainerStats, RuntimeError_, SandboxConfig,
)
from sampan.node.runtimes.shim import process_start_time

SANDBOXES = common.SANDBOXES


class RawRuntime(common.StateDirLayout):
    name = "raw"
    isolates = False

    def __init__(self, state_dir: Path, cgroups: Cgroups | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.cgroups = cgroups or Cgroups()
        self.state_dir.mkdir(parents=True, exist_ok=True)

    async def create_sandbox(self, config: SandboxConfig) -> None:
        sdir = self._sdir(config.pod_uid)
        sdir.mkdir(parents=True, exist_ok=True)
        common.write_json(sdir / "sandbox.json", asdict(config))

    async def remove_sandbox(self, pod_uid: str) -> None:
        for cid in await self.pod_container_ids(pod_uid):
            await self.remove_container(cid)
        await asyncio.to_thread(shutil.rmtree, self._sdir(pod_uid), True)

    async def start_container(self, sandbox: SandboxConfig, config: ContainerConfig) -> ContainerState:
        cdir = self._cdir(config.id)
        if (cdir / "started.json").exists():
            raise RuntimeError_(f"container {config.id} already exists")
        await asyncio.to_thread(shutil.rmtree, cdir, True)
        cdir.mkdir(parents=True)
        env = dict(config.env)
        env.setdefault("PATH", os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        env.setdefault("HOSTNAME", os.uname().nodename)
        cwd = config.working_dir or str(cdir)
        cgroup = ""
        if self.cgroups.available:
            parent = sandbox.cgroup_parent.strip("/") or self.cgroups.root_name
            cgroup = f"/{parent}/{config.id}"
            try:
                await asyncio.to_thread(self.cgroups.create, cgroup, config.resources)
            except OSError as exc:
                raise RuntimeError_(f"cannot set up the cgroup of container {config.id}: {exc}") from exc
        common.write_json(cdir / "meta.json", common.meta_for(config, cgroup=cgroup, env=env, cwd=cwd))
        sec = config.security
        spec = {
            "mode": "exec", "dir": str(cdir), "log_path": str(config.log_path), "stdin": config.stdin,
            "tty": config.tty, "cgroup": cgroup, "cgroup_dirs": [str(d) for d in self.cgroups.dirs(cgroup)] if cgroup else [],
            "args": list(config.args), "env": env, "cwd": cwd,
            "oom_score_adj": config.resources.oom_score_adj,
            "uid": sec.run_as_user, "gid": sec.run_as_group, "groups": list(sec.supplemental_groups),
        }
        try:
            await common.run_shim(cdir, spec)
        except RuntimeError_:
            await self.remove_container(config.id)  # a failed start leaves nothing behind
            raise
        return await self.state(config.id)

    def _live_pid(self, cdir: Path) -> int | None:
        """The container's pid if that process still runs (not a later one reusing the pid)."""
        if (cdir / "exit.json").exists():
            return None
        started = common.read_json(cdir / "started.json") or {}
        pid = started.get("pid")
        if not isinstance(pid, int):
            return None
        ticks = process_start_time(pid)
        if ticks is None or (started.get("start_ticks") is not None and ticks != started["start_ticks"]):
            return None
        return pid

    def _signal(self, cdir: Path, sig: int) -> None:
        pid = self._live_pid(cdir)
        if pid is None:
            return
        # The container has its own session: signal its whole process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        cdir = self._cdir(container_id)
        self._meta(container_id)
        if self._live_pid(cdir) is None:
            return
        self._signal(cdir, signal.SIGTERM)
        if await common.wait_exited(cdir, max(0.0, grace_seconds)):
            return
        self._signal(cdir, signal.SIGKILL)
        if not await common.wait_exited(cdir, 30.0) and self._live_pid(cdir) is not None:
            raise RuntimeError_(f"container {container_id} did not stop after SIGKILL")

    async def remove_container(self, container_id: str) -> None:
        cdir = self._cdir(container_id)
        meta = common.read_json(cdir / "meta.json") or {}
        if self._live_pid(cdir) is not None:
            self._signal(cdir, signal.SIGKILL)
            await common.wait_exited(cdir, 10.0)
        if meta.get("cgroup"):
            await asyncio.to_thread(self.cgroups.remove, meta["cgroup"])
        await asyncio.to_thread(shutil.rmtree, cdir, True)

    async def state(self, container_id: str) -> ContainerState:
        cdir = self._cdir(container_id)
        meta = self._meta(container_id)
        st = common.state_from_files(cdir, meta)
        if st.status != "running" or self._live_pid(cdir) is not None:
            return st
        if await common.settle_exit(cdir):
            return common.state_from_files(cdir, meta)
        st.status = "unknown"  # the process is gone and nothing recorded how it ended
        return st

    async def exec(self, container_id: str, command: list[str], io: StreamIO) -> int:
        meta = self._meta(container_id)
        if self._live_pid(self._cdir(container_id)) is None:
            raise RuntimeError_(f"container {container_id} is not running")
        if not command:
            raise RuntimeError_("command is required")
        backend = LocalProcessBackend(cwd=meta.get("cwd") or None, env=meta.get("env") or None)
        return await backend._run(command, io)

    async def attach(self, container_id: str, io: StreamIO) -> int:
        meta = self._meta(container_id)
        return await common.attach_via_log(self._cdir(container_id), meta, io)

    async def stats(self, container_id: str) -> ContainerStats:
        meta = self._meta(container_id)
        if not meta.get("cgroup"):
            return ContainerStats()
        return await asyncio.to_thread(self.cgroups.stats, meta["cgroup"])

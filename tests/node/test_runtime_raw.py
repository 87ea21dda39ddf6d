"""The raw runtime: containers as host processes started by the shim."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest

from sampan.node.cgroups import Cgroups
from sampan.node.runtimes.base import ContainerConfig, Resources, RuntimeError_, SandboxConfig
from sampan.node.runtimes.raw import RawRuntime
from tests.node.runtime_helpers import Capture, log_lines, wait_log, wait_status


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cgroups = Cgroups(f"sampan-test-{uuid.uuid4().hex[:8]}")
        self.state_dir = tmp / "containers"
        self.runtime = self.new_runtime()

    def new_runtime(self) -> RawRuntime:
        return RawRuntime(self.state_dir, cgroups=self.cgroups)

    async def sandbox(self) -> SandboxConfig:
        uid = uuid.uuid4().hex
        sb = SandboxConfig(pod_uid=uid, namespace="default", name="pod", hostname="pod",
                           cgroup_parent=self.cgroups.pod_parent(uid, "BestEffort"))
        await self.runtime.create_sandbox(sb)
        return sb

    def config(self, sb: SandboxConfig, name: str, args: list[str], **kw) -> ContainerConfig:
        return ContainerConfig(id=f"{sb.pod_uid[:8]}-{name}-0", pod_uid=sb.pod_uid, name=name, rootfs=Path("/"),
                               args=args, log_path=self.tmp / "logs" / f"{name}.log", **kw)

    async def cleanup(self) -> None:
        rt = self.new_runtime()
        for st in await rt.list_containers():
            await rt.remove_container(st.id)
        self.cgroups.remove(self.cgroups.root_name)


@pytest.fixture
async def env(tmp_path: Path):
    e = Env(tmp_path)
    try:
        yield e
    finally:
        await e.cleanup()
    assert not any((h / e.cgroups.root_name).exists() for h in e.cgroups.hierarchies())


async def test_runs_a_host_process_with_env_cwd_and_cri_log(env: Env, tmp_path: Path) -> None:
    assert env.runtime.isolates is False
    sb = await env.sandbox()
    work = tmp_path / "work"
    work.mkdir()
    cfg = env.config(sb, "echo", ["sh", "-c", 'echo "foo=$FOO"; pwd; echo oops >&2; exit 4'],
                     env={"FOO": "bar"}, working_dir=str(work))
    started = await env.runtime.start_container(sb, cfg)
    assert started.pid and started.pid != os.getpid()
    st = await wait_status(env.runtime, cfg.id)
    assert (st.exit_code, st.oom_killed) == (4, False)
    lines = log_lines(cfg.log_path)
    assert ("stdout", "foo=bar") in lines and ("stdout", str(work)) in lines and ("stderr", "oops") in lines


async def test_runs_in_its_own_session(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "sleeper", ["sleep", "1000"], resources=Resources(oom_score_adj=1000))
    st = await env.runtime.start_container(sb, cfg)
    assert os.getsid(st.pid) == st.pid != os.getsid(0)
    assert int(Path(f"/proc/{st.pid}/oom_score_adj").read_text()) == 1000  # best-effort goes first


async def test_stop_sigterm_then_sigkill(env: Env) -> None:
    sb = await env.sandbox()
    polite = env.config(sb, "polite", ["sleep", "1000"])
    await env.runtime.start_container(sb, polite)
    await env.runtime.stop_container(polite.id, grace_seconds=30)
    assert (await env.runtime.state(polite.id)).exit_code == 128 + 15
    stubborn = env.config(sb, "stubborn", ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"])
    await env.runtime.start_container(sb, stubborn)
    await wait_log(stubborn.log_path, "ready")
    await env.runtime.stop_container(stubborn.id, grace_seconds=0.5)
    assert (await env.runtime.state(stubborn.id)).exit_code == 128 + 9


async def test_exec_uses_the_container_env_and_cwd(env: Env, tmp_path: Path) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "svc", ["sleep", "1000"], env={"FOO": "in-container"}, working_dir=str(tmp_path))
    await env.runtime.start_container(sb, cfg)
    cap = Capture()
    code = await env.runtime.exec(cfg.id, ["sh", "-c", 'echo "$FOO $(pwd)"; exit 3'], cap.io)
    assert (code, bytes(cap.stdout)) == (3, f"in-container {tmp_path}\n".encode())


async def test_survives_the_agent_and_exit_code_is_recovered(env: Env, tmp_path: Path) -> None:
    sb = await env.sandbox()
    flag = tmp_path / "go"
    cfg = env.config(sb, "later", ["sh", "-c", f"echo up; while [ ! -e {flag} ]; do sleep 1; done; exit 42"])
    pid = (await env.runtime.start_container(sb, cfg)).pid
    env.runtime = None  # type: ignore[assignment]
    again = env.new_runtime()
    listed = {st.id: st for st in await again.list_containers()}
    assert listed[cfg.id].status == "running" and listed[cfg.id].pid == pid
    await wait_log(cfg.log_path, "up")
    flag.touch()
    st = await wait_status(again, cfg.id)
    assert st.exit_code == 42 and st.finished_at is not None
    env.runtime = again


async def test_start_failure_is_reported(env: Env) -> None:
    sb = await env.sandbox()
    with pytest.raises(RuntimeError_, match="no-such-command"):
        await env.runtime.start_container(sb, env.config(sb, "bad", ["no-such-command-xyz"]))
    assert await env.runtime.list_containers() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for cgroups")
async def test_memory_limit_via_cgroup_and_oom(env: Env) -> None:
    if not env.cgroups.available or (env.cgroups.mode != "v2" and "memory" not in env.cgroups.v1):
        pytest.skip("no memory cgroup")
    sb = await env.sandbox()
    limit = 32 << 20
    cfg = env.config(sb, "hog", ["tail", "/dev/zero"], resources=Resources(memory_limit_bytes=limit))
    await env.runtime.start_container(sb, cfg)
    meta_cgroup = f"/{sb.cgroup_parent}/{cfg.id}"
    if env.cgroups.mode == "v2":
        assert (env.cgroups.unified / meta_cgroup.strip("/") / "memory.max").read_text().strip() == str(limit)  # type: ignore[operator]
    else:
        assert int((env.cgroups.v1["memory"] / meta_cgroup.strip("/") / "memory.limit_in_bytes").read_text()) == limit
    st = await wait_status(env.runtime, cfg.id)
    assert st.oom_killed is True and st.exit_code == 137


async def test_a_container_whose_shim_died_is_unknown(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "orphan", ["sleep", "1000"])
    st = await env.runtime.start_container(sb, cfg)
    started = json.loads((env.state_dir / cfg.id / "started.json").read_text())
    os.kill(started["shim_pid"], signal.SIGKILL)  # e.g. killed along with the agent's cgroup
    os.kill(st.pid, signal.SIGKILL)
    await wait_status(env.runtime, cfg.id, "unknown")
    await env.runtime.stop_container(cfg.id, grace_seconds=60)  # nothing left to stop: returns at once
    await env.runtime.remove_container(cfg.id)
    assert await env.runtime.list_containers() == []

"""The OCI runtime with runc and busybox containers (root only)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from sampan.apiserver.streaming.backend import StreamIO
from sampan.node.cgroups import Cgroups
from sampan.node.runtimes.base import ContainerConfig, Resources, RuntimeError_, SandboxConfig, Security
from sampan.node.runtimes.oci import OciRuntime
from sampan.node.runtimes.raw import RawRuntime
from sampan.node.runtimes.select import probe, select_runtime
from tests.node import busybox
from tests.node.runtime_helpers import Capture, log_lines, wait_log, wait_status

RUNC = shutil.which("runc")
CONMON = shutil.which("conmon")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or RUNC is None or not busybox.available(),
                                reason="needs root, runc and busybox-static")


class Env:
    def __init__(self, tmp: Path, monitor: str = "conmon") -> None:
        self.tmp = tmp
        self.monitor = monitor
        self.cgroups = Cgroups(f"sampan-test-{uuid.uuid4().hex[:8]}")
        self.rootfs = busybox.busybox_rootfs(tmp / "rootfs")
        self.state_dir = tmp / "containers"
        self.runc_root = tmp / "runc"
        self.runtime = self.new_runtime()
        self.netns: list[str] = []

    def new_runtime(self) -> OciRuntime:
        return OciRuntime(self.state_dir, binary=RUNC or "runc", runc_root=self.runc_root, cgroups=self.cgroups,
                          conmon=CONMON if self.monitor == "conmon" else None)

    async def sandbox(self, uid: str | None = None, **kw) -> SandboxConfig:
        uid = uid or uuid.uuid4().hex
        parent = self.cgroups.pod_parent(uid, "Burstable")
        await self.cgroups.ensure_pod(uid, "Burstable", Resources(cpu_shares=1024))
        sb = SandboxConfig(pod_uid=uid, namespace="default", name="pod", hostname="podhost", cgroup_parent=parent, **kw)
        await self.runtime.create_sandbox(sb)
        return sb

    def config(self, sb: SandboxConfig, name: str, args: list[str], **kw) -> ContainerConfig:
        return ContainerConfig(id=f"{sb.pod_uid[:8]}-{name}-0", pod_uid=sb.pod_uid, name=name, rootfs=self.rootfs,
                               args=args, log_path=self.tmp / "logs" / f"{name}.log", **kw)

    async def cleanup(self) -> None:
        rt = self.new_runtime()
        for st in await rt.list_containers():
            await rt.remove_container(st.id)
        sandboxes = self.state_dir / "_sandboxes"
        for sdir in list(sandboxes.iterdir()) if sandboxes.exists() else []:
            await rt.remove_sandbox(sdir.name)
        out = subprocess.run([RUNC or "runc", "--root", str(self.runc_root), "list", "-q"], capture_output=True, text=True)
        for cid in out.stdout.split():
            subprocess.run([RUNC or "runc", "--root", str(self.runc_root), "delete", "--force", cid], capture_output=True)
        self.cgroups.remove(self.cgroups.root_name)
        for name in self.netns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


# Every behaviour holds with either container monitor: conmon, or the Python shim without it.
@pytest.fixture(params=["conmon", "shim"])
async def env(request, tmp_path: Path):
    if request.param == "conmon" and CONMON is None:
        pytest.skip("conmon is not installed")
    e = Env(tmp_path, request.param)
    try:
        yield e
    finally:
        await e.cleanup()
    assert not any(p.exists() for p in (h / e.cgroups.root_name for h in e.cgroups.hierarchies()))


async def test_output_goes_to_the_log_in_cri_format(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "echo", ["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    started = await env.runtime.start_container(sb, cfg)
    assert started.pid and started.started_at
    st = await wait_status(env.runtime, cfg.id)
    assert (st.exit_code, st.oom_killed, st.name, st.pod_uid) == (3, False, "echo", sb.pod_uid)
    assert st.finished_at and st.finished_at >= st.started_at
    lines = log_lines(cfg.log_path)
    assert ("stdout", "hello") in lines and ("stderr", "oops") in lines


async def test_containers_of_a_pod_share_ipc_uts_and_network(env: Env) -> None:
    name = f"sampan-t-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    env.netns.append(name)
    sb = await env.sandbox(netns_path=f"/run/netns/{name}")
    a = await env.runtime.start_container(sb, env.config(sb, "a", ["sleep", "1000"]))
    b = await env.runtime.start_container(sb, env.config(sb, "b", ["sleep", "1000"]))
    for ns in ("ipc", "uts", "net"):
        assert os.readlink(f"/proc/{a.pid}/ns/{ns}") == os.readlink(f"/proc/{b.pid}/ns/{ns}")
        assert os.readlink(f"/proc/{a.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    assert os.stat(f"/proc/{a.pid}/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
    assert os.readlink(f"/proc/{a.pid}/ns/pid") != os.readlink(f"/proc/{b.pid}/ns/pid")
    cap = Capture()
    assert await env.runtime.exec(a.id, ["hostname"], cap.io) == 0
    assert cap.stdout.decode().strip() == "podhost"


async def test_env_cwd_and_user(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "who", ["sh", "-c", 'echo "foo=$FOO"; pwd; id -u; id -g; cat /etc/hostname'],
                     env={"FOO": "bar"}, working_dir="/tmp",
                     security=Security(run_as_user=65534, run_as_group=65534))
    await env.runtime.start_container(sb, cfg)
    assert (await wait_status(env.runtime, cfg.id)).exit_code == 0
    assert [t for _, t in log_lines(cfg.log_path)] == ["foo=bar", "/tmp", "65534", "65534", "podhost"]


async def test_read_only_root_filesystem(env: Env) -> None:
    sb = await env.sandbox()
    script = "if touch /x 2>/dev/null; then echo writable; else echo readonly; fi; touch /dev/shm/ok && echo shm"
    cfg = env.config(sb, "ro", ["sh", "-c", script], security=Security(read_only_rootfs=True))
    await env.runtime.start_container(sb, cfg)
    assert (await wait_status(env.runtime, cfg.id)).exit_code == 0
    assert [t for _, t in log_lines(cfg.log_path)] == ["readonly", "shm"]
    assert not (env.rootfs / "x").exists()


async def test_memory_limit_oom_kill_is_detected(env: Env) -> None:
    sb = await env.sandbox()
    limit = 16 << 20
    cfg = env.config(sb, "hog", ["tail", "/dev/zero"], resources=Resources(memory_limit_bytes=limit))
    await env.runtime.start_container(sb, cfg)
    st = await wait_status(env.runtime, cfg.id)
    assert st.oom_killed is True
    assert st.exit_code == 137
    mem = env.cgroups.v1.get("memory")
    if env.cgroups.mode != "v2" and mem:
        cgroup = env.runtime.cgroup_path(sb, cfg.id).strip("/")
        assert int((mem / cgroup / "memory.limit_in_bytes").read_text()) == limit


async def test_cpu_quota_and_shares_are_applied(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "cpu", ["sleep", "1000"], resources=Resources(cpu_shares=512, cpu_quota_us=50_000))
    await env.runtime.start_container(sb, cfg)
    cgroup = env.runtime.cgroup_path(sb, cfg.id)
    assert cgroup.startswith(f"/{sb.cgroup_parent}/")
    if env.cgroups.mode == "v2":
        base = env.cgroups.unified / cgroup.strip("/")  # type: ignore[operator]
        assert (base / "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        base = env.cgroups.v1["cpu"] / cgroup.strip("/")
        assert int((base / "cpu.cfs_quota_us").read_text()) == 50_000
        assert int((base / "cpu.cfs_period_us").read_text()) == 100_000
        assert int((base / "cpu.shares").read_text()) == 512
    stats = await env.runtime.stats(cfg.id)
    assert stats.cpu_usage_ns > 0 and stats.memory_working_set_bytes > 0


async def test_stop_sends_sigterm_first(env: Env) -> None:
    sb = await env.sandbox()
    script = 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 1; done'
    cfg = env.config(sb, "term", ["sh", "-c", script])
    await env.runtime.start_container(sb, cfg)
    await wait_log(cfg.log_path, "ready")
    await env.runtime.stop_container(cfg.id, grace_seconds=60)
    st = await env.runtime.state(cfg.id)
    assert (st.status, st.exit_code) == ("exited", 7)
    assert ("stdout", "got-term") in log_lines(cfg.log_path)


async def test_stop_kills_after_the_grace_period(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "stubborn", ["sleep", "1000"])  # pid 1 ignores an untrapped SIGTERM
    await env.runtime.start_container(sb, cfg)
    await env.runtime.stop_container(cfg.id, grace_seconds=0.5)
    st = await env.runtime.state(cfg.id)
    assert (st.status, st.exit_code) == ("exited", 137)


async def test_exec_output_exit_code_and_tty(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "sh", ["sleep", "1000"], env={"FOO": "from-container"}, working_dir="/tmp")
    await env.runtime.start_container(sb, cfg)
    cap = Capture()
    code = await env.runtime.exec(cfg.id, ["sh", "-c", 'echo "$FOO $(pwd)"; echo err >&2; exit 5'], cap.io)
    assert (code, bytes(cap.stdout), bytes(cap.stderr)) == (5, b"from-container /tmp\n", b"err\n")
    cap = Capture(stdin=b"piped\n")
    assert await env.runtime.exec(cfg.id, ["cat"], cap.io) == 0
    assert bytes(cap.stdout) == b"piped\n"
    tty = Capture(tty=True)
    assert await env.runtime.exec(cfg.id, ["sh", "-c", "test -t 1 && echo is-a-tty"], tty.io) == 0
    assert b"is-a-tty" in tty.stdout


async def test_attach_writes_stdin_and_streams_output(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "reader", ["sh", "-c", "echo ready; read line; echo got-$line"], stdin=True)
    await env.runtime.start_container(sb, cfg)
    await wait_log(cfg.log_path, "ready")
    cap = Capture(stdin=b"hello\n")
    assert await env.runtime.attach(cfg.id, cap.io) == 0
    assert b"got-hello\n" in cap.stdout


async def test_container_survives_the_agent_and_is_re_adopted(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "long", ["sh", "-c", "echo up; while true; do sleep 1; done"], labels={"k": "v"})
    pid = (await env.runtime.start_container(sb, cfg)).pid
    del env.runtime  # the agent goes away; the container must not
    again = env.new_runtime()
    listed = {st.id: st for st in await again.list_containers()}
    assert listed[cfg.id].status == "running" and listed[cfg.id].pid == pid
    assert listed[cfg.id].labels == {"k": "v"}
    assert Path(f"/proc/{pid}").exists()
    await wait_log(cfg.log_path, "up")
    await again.stop_container(cfg.id, grace_seconds=0.5)
    assert (await again.state(cfg.id)).exit_code == 137
    env.runtime = again


async def test_exit_code_is_recovered_after_an_agent_restart(env: Env) -> None:
    sb = await env.sandbox()
    script = "while [ ! -e /tmp/go ]; do sleep 1; done; echo done; exit 42"
    cfg = env.config(sb, "later", ["sh", "-c", script])
    await env.runtime.start_container(sb, cfg)
    env.runtime = None  # type: ignore[assignment]
    (env.rootfs / "tmp" / "go").touch()  # the container exits while no runtime object exists
    again = env.new_runtime()
    st = await wait_status(again, cfg.id)
    assert st.exit_code == 42 and st.finished_at is not None
    assert ("stdout", "done") in log_lines(cfg.log_path)
    env.runtime = again


async def test_start_failure_is_reported_and_remove_cleans_up(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "missing", ["/no/such/binary"])
    with pytest.raises(RuntimeError_, match="no/such/binary"):
        await env.runtime.start_container(sb, cfg)
    assert await env.runtime.list_containers() == []
    ok = env.config(sb, "ok", ["true"])
    await env.runtime.start_container(sb, ok)
    await wait_status(env.runtime, ok.id)
    await env.runtime.remove_container(ok.id)
    assert ok.id not in {st.id for st in await env.runtime.list_containers()}
    await env.runtime.remove_sandbox(sb.pod_uid)
    assert not (env.state_dir / "_sandboxes" / sb.pod_uid).exists()
    with pytest.raises(RuntimeError_):
        await env.runtime.state(ok.id)


async def test_select_runtime(tmp_path: Path) -> None:
    runtime, why = await select_runtime("auto", tmp_path / "c", runc_root=tmp_path / "runc")
    assert isinstance(runtime, OciRuntime) and "oci" in why and "runc" in why
    raw, why = await select_runtime("raw", tmp_path / "c")
    assert isinstance(raw, RawRuntime) and "raw" in why
    crun = await probe("crun")
    if crun is not None:  # e.g. "crun fails here: cgroups in hybrid mode not supported"
        assert crun.startswith("crun ")
    assert await probe("no-such-runtime") == "no-such-runtime is not installed"


async def test_config_json_follows_the_sandbox(env: Env) -> None:
    sb = await env.sandbox(host_network=True)
    cfg = env.config(sb, "spec", ["true"], security=Security(capabilities_add=["NET_ADMIN"], capabilities_drop=["KILL"]))
    await env.runtime.start_container(sb, cfg)
    spec = json.loads((env.state_dir / cfg.id / "config.json").read_text())
    kinds = {ns["type"] for ns in spec["linux"]["namespaces"]}
    assert "network" not in kinds and {"pid", "mount", "ipc", "uts"} <= kinds
    caps = spec["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in caps and "CAP_KILL" not in caps
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "oomScoreAdj" not in spec["process"]
    assert (await wait_status(env.runtime, cfg.id)).exit_code == 0


async def test_oom_score_adj_is_only_ever_raised(env: Env) -> None:
    sb = await env.sandbox()
    current = int(Path("/proc/self/oom_score_adj").read_text())
    low = env.config(sb, "low", ["sleep", "1000"], resources=Resources(oom_score_adj=-997))
    high = env.config(sb, "high", ["sleep", "1000"], resources=Resources(oom_score_adj=1000))
    low_pid = (await env.runtime.start_container(sb, low)).pid
    high_pid = (await env.runtime.start_container(sb, high)).pid
    assert int(Path(f"/proc/{high_pid}/oom_score_adj").read_text()) == 1000
    assert int(Path(f"/proc/{low_pid}/oom_score_adj").read_text()) >= current


async def test_tty_container_gets_a_terminal(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "tty", ["sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty"], tty=True)
    await env.runtime.start_container(sb, cfg)
    assert (await wait_status(env.runtime, cfg.id)).exit_code == 0
    assert log_lines(cfg.log_path) == [("stdout", "on-a-tty")]


def _monitor_pid(env: Env, container_id: str) -> int:
    started = json.loads((env.state_dir / container_id / "started.json").read_text())
    return started["conmon_pid" if env.monitor == "conmon" else "shim_pid"]


async def test_the_monitor_is_its_own_session_and_parents_the_container(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "mon", ["sleep", "1000"])
    pid = (await env.runtime.start_container(sb, cfg)).pid
    monitor = _monitor_pid(env, cfg.id)
    expected = b"conmon" if env.monitor == "conmon" else b"sampan.node.runtimes.shim"
    assert expected in Path(f"/proc/{monitor}/cmdline").read_bytes()
    assert os.getsid(monitor) == monitor != os.getsid(0)
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid == monitor
    await env.runtime.remove_container(cfg.id)
    for _ in range(200):  # the monitor goes once it has recorded the exit
        if not Path(f"/proc/{monitor}").exists():
            break
        await asyncio.sleep(0.05)
    assert not Path(f"/proc/{monitor}").exists()


async def test_attach_to_a_tty_container(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "tty-in", ["sh", "-c", "echo ready; read line; echo got-$line; test -t 0 && echo tty"],
                     tty=True, stdin=True)
    await env.runtime.start_container(sb, cfg)
    await wait_log(cfg.log_path, "ready")
    cap = Capture(stdin=b"hi\n", tty=True)
    assert await env.runtime.attach(cfg.id, cap.io) == 0
    assert b"got-hi" in cap.stdout and b"tty" in cap.stdout


@pytest.mark.skipif(CONMON is None, reason="needs conmon")
async def test_select_runtime_names_the_monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, why = await select_runtime("oci", tmp_path / "c", runc_root=tmp_path / "runc")
    assert isinstance(runtime, OciRuntime) and runtime.conmon == CONMON and "conmon" in why
    monkeypatch.setenv("PATH", str(Path(RUNC or "runc").parent) + ":/nonexistent")
    if shutil.which("conmon") is None:
        runtime, why = await select_runtime("oci", tmp_path / "c", runc_root=tmp_path / "runc")
        assert runtime.conmon is None and "conmon is not installed" in why


async def test_a_container_whose_monitor_died_is_unknown(env: Env) -> None:
    sb = await env.sandbox()
    cfg = env.config(sb, "orphan", ["sleep", "1000"])
    await env.runtime.start_container(sb, cfg)
    os.kill(_monitor_pid(env, cfg.id), signal.SIGKILL)  # e.g. killed along with the agent's cgroup
    subprocess.run([RUNC or "runc", "--root", str(env.runc_root), "kill", cfg.id, "KILL"], check=True)
    st = await wait_status(env.runtime, cfg.id, "unknown")
    assert st.exit_code is None


async def test_attach_resizes_the_terminal(env: Env) -> None:
    if env.monitor != "conmon":
        pytest.skip("the shim follows the log: no terminal to resize on attach")
    sb = await env.sandbox()
    # Waits (at most 20 s) for the new size, then prints it.
    script = 'echo ready; i=0; while [ "$(stty size)" != "40 100" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; stty size'
    cfg = env.config(sb, "size", ["sh", "-c", script], tty=True, stdin=True)
    await env.runtime.start_container(sb, cfg)
    await wait_log(cfg.log_path, "ready")

    async def sizes():
        yield 100, 40

    cap = bytearray()

    async def out(data: bytes) -> None:
        cap.extend(data)

    io = StreamIO(stdin=None, stdout=out, stderr=None, tty=True, resize=sizes())
    assert await env.runtime.attach(cfg.id, io) == 0
    assert b"40 100" in cap

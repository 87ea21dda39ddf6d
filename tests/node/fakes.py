"""Small in-memory stand-ins for the runtime, image store, pod network and cgroups, with the
same methods as the real ones, for unit tests of the agent's logic.

A fake container's behaviour comes from its args: ``["exit", "N"]`` ends at once with code N,
``["oom"]`` ends OOM-killed, anything else runs until stopped. ``exec`` runs ``["fail"]`` as
exit 1 and anything else as exit 0 (echoing the command)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sampan.apiserver.streaming.backend import StreamIO
from sampan.node.runtimes.base import (
    ContainerConfig, ContainerState, ContainerStats, Resources, RuntimeError_, SandboxConfig,
)


class FakeRuntime:
    name = "fake"
    isolates = True
    version = "0.1"

    def __init__(self) -> None:
        self.sandboxes: dict[str, SandboxConfig] = {}
        self.containers: dict[str, ContainerState] = {}
        self.configs: dict[str, ContainerConfig] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.execs: list[list[str]] = []
        self.exec_results: dict[str, int] = {}  # first arg -> exit code

    async def create_sandbox(self, config: SandboxConfig) -> None:
        self.sandboxes[config.pod_uid] = config

    async def remove_sandbox(self, pod_uid: str) -> None:
        self.sandboxes.pop(pod_uid, None)

    async def start_container(self, sandbox: SandboxConfig, config: ContainerConfig) -> ContainerState:
        if config.pod_uid not in self.sandboxes:
            raise RuntimeError_("no sandbox")
        now = time.time()
        state = ContainerState(config.id, config.pod_uid, config.name, "running", pid=None,
                               started_at=now, labels=dict(config.labels))
        args = config.args
        if args[:1] == ["exit"]:
            state.status, state.exit_code, state.finished_at = "exited", int(args[1]), now
        elif args[:1] == ["msg"]:  # writes its termination message, then fails
            for m in config.mounts:
                if m.destination in ("/dev/termination-log", "/tmp/msg"):
                    Path(m.source).write_text(args[1])
            state.status, state.exit_code, state.finished_at = "exited", 1, now
        elif args[:1] == ["oom"]:
            state.status, state.exit_code, state.finished_at, state.oom_killed = "exited", 137, now, True
        config.log_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        with open(config.log_path, "a") as f:
            f.write(f"{stamp} stdout F started {' '.join(args)}\n")
        self.containers[config.id] = state
        self.configs[config.id] = config
        self.started.append(config.id)
        return ContainerState(**state.__dict__)

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        state = self.containers.get(container_id)
        if state and state.status == "running":
            state.status, state.exit_code, state.finished_at = "exited", 137, time.time()
            self.stopped.append(container_id)

    def crash(self, container_id: str, code: int = 1) -> None:
        state = self.containers[container_id]
        state.status, state.exit_code, state.finished_at = "exited", code, time.time()

    async def remove_container(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    async def state(self, container_id: str) -> ContainerState:
        if container_id not in self.containers:
            raise RuntimeError_(f"container {container_id} not found")
        return ContainerState(**self.containers[container_id].__dict__)

    async def list_containers(self) -> list[ContainerState]:
        return [ContainerState(**c.__dict__) for c in self.containers.values()]

    async def exec(self, container_id: str, command: list[str], io: StreamIO) -> int:
        self.execs.append(command)
        if io.stdout:
            await io.stdout((" ".join(command) + "\n").encode())
        return self.exec_results.get(command[0] if command else "", 1 if command[:1] == ["fail"] else 0)

    async def attach(self, container_id: str, io: StreamIO) -> int:
        return 0

    async def stats(self, container_id: str) -> ContainerStats:
        return ContainerStats()


@dataclass
class FakeImage:
    ref: str
    id: str
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    size: int = 1000
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=lambda: ["run"])
    env: list[str] = field(default_factory=lambda: ["PATH=/bin"])
    working_dir: str = ""
    user: str = ""
    exposed_ports: list[str] = field(default_factory=list)


def _norm(ref: str) -> str:
    from sampan.node.simulated_pods import normalized_image

    return normalized_image(ref)


class FakeImages:
    def __init__(self, root: Path, available: list[str] | None = None) -> None:
        self.root = root
        self.remote = {_norm(r) for r in (available or [])}  # what a pull can fetch
        self.local: dict[str, FakeImage] = {}
        self.pulls: list[str] = []
        self.mounted: set[str] = set()

    def add(self, ref: str, **kw: Any) -> FakeImage:
        ref = _norm(ref)
        img = FakeImage(ref, "sha256:" + str(abs(hash(ref))), [ref], [ref.rsplit(":", 1)[0] + "@sha256:abc"], **kw)
        self.local[ref] = img
        return img

    async def import_archive(self, path: Path) -> list[str]:
        return [self.add(path.stem).ref]

    async def pull(self, ref: str, auth: tuple[str, str] | None = None, progress: Any = None) -> FakeImage:
        self.pulls.append(ref)
        ref = _norm(ref)
        if ref not in self.remote:
            raise RuntimeError(f"{ref}: not found")
        return self.local.get(ref) or self.add(ref)

    def get(self, ref: str) -> FakeImage | None:
        return self.local.get(_norm(ref))

    def list(self) -> list[FakeImage]:
        return list(self.local.values())

    async def mount_rootfs(self, image: FakeImage, container_id: str) -> Path:
        self.mounted.add(container_id)
        return self.root / container_id

    async def unmount_rootfs(self, container_id: str) -> None:
        self.mounted.discard(container_id)


@dataclass
class FakeNetInfo:
    netns_path: str
    ip: str
    gateway: str


class FakeNetwork:
    def __init__(self, cidr: str = "198.18.0.0/24") -> None:
        self.cidr = cidr
        self.pods: dict[str, str] = {}
        self.next = 2

    async def setup(self, pod_uid: str, namespace: str, name: str, port_mappings: list[dict]) -> FakeNetInfo:
        base = self.cidr.split("/")[0].rsplit(".", 1)[0]
        ip = self.pods.setdefault(pod_uid, f"{base}.{self.next}")
        self.next += 1
        return FakeNetInfo(self.netns_path(pod_uid), ip, f"{base}.1")

    async def teardown(self, pod_uid: str) -> None:
        self.pods.pop(pod_uid, None)

    def netns_path(self, pod_uid: str) -> str:
        return f"/run/netns/sampan-{pod_uid[:12]}"

    async def cleanup_stale(self, keep: set[str]) -> None:
        for uid in set(self.pods) - keep:
            self.pods.pop(uid)


class FakeCgroups:
    def __init__(self) -> None:
        self.pods: set[str] = set()

    def pod_parent(self, pod_uid: str, qos_class: str) -> str:
        return f"sampan/pod{pod_uid}"

    def resources_for(self, container_spec: dict) -> Resources:
        return Resources()

    def pod_resources(self, pod: dict) -> Resources:
        return Resources()

    async def ensure_pod(self, pod_uid: str, qos: str, resources: Resources) -> None:
        self.pods.add(pod_uid)

    async def remove_pod(self, pod_uid: str, qos: str) -> None:
        self.pods.discard(pod_uid)


def pod(name: str, node: str = "node-a", containers: list[dict] | None = None, **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": containers or [{"name": "c", "image": "busybox:1.36"}],
                     **spec}}


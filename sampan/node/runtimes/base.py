"""The interface between pod workers and a container runtime.

A pod is a *sandbox* (its network namespace, made by the pod network, plus the IPC and
UTS namespaces and the pod cgroup the runtime makes) holding containers. Containers of
one pod join the sandbox's namespaces; there is no pause container. Container output
goes to a log file, never to a pipe held by the agent, so containers outlive the agent
and a restarted agent re-adopts them by listing what the runtime still runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from sampan.apiserver.streaming.backend import StreamIO

ContainerStatus = Literal["created", "running", "exited", "unknown"]


@dataclass
class Resources:
    """Linux resource settings derived from requests/limits (cgroups.py does the mapping)."""

    cpu_shares: int | None = None  # from requests.cpu (v1 shares; v2 weight derived)
    cpu_quota_us: int | None = None  # from limits.cpu, per cpu_period_us
    cpu_period_us: int = 100_000
    memory_limit_bytes: int | None = None  # from limits.memory
    pids_limit: int | None = None
    # Like the kubelet's per-QoS value; runtimes never lower it below the agent's own.
    oom_score_adj: int | None = None


@dataclass
class Security:
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    read_only_rootfs: bool = False
    privileged: bool = False
    capabilities_add: list[str] = field(default_factory=list)
    capabilities_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    seccomp: dict[str, Any] | None = None  # OCI linux.seccomp; None: no filter


@dataclass
class Mount:
    source: str
    destination: str
    read_only: bool = False
    kind: str = "bind"  # bind | tmpfs | proc ...


@dataclass
class SandboxConfig:
    pod_uid: str
    namespace: str
    name: str
    hostname: str
    host_network: bool = False
    host_pid: bool = False  # hostPID: containers see the node's processes
    host_ipc: bool = False  # hostIPC: the node's System V IPC and POSIX message queues
    share_process_namespace: bool = False  # one PID namespace for all the pod's containers
    netns_path: str | None = None  # from the pod network; None with hostNetwork
    cgroup_parent: str = ""  # pod cgroup, e.g. "sampan/pod<uid>" (QoS level included)
    resources: Resources = field(default_factory=Resources)  # pod-level limits
    dns_config: str = ""  # resolv.conf contents for the pod ("" = host's)
    hosts: str = ""  # /etc/hosts contents for the pod ("" = a default one)


@dataclass
class ContainerConfig:
    id: str  # unique runtime id, e.g. "<pod uid>-<container name>-<attempt>"
    pod_uid: str
    name: str  # the container's name in the pod spec
    rootfs: Path  # prepared (mounted) by the image store; the raw runtime ignores it
    args: list[str]  # entrypoint + args resolved from the image config and the pod spec
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    mounts: list[Mount] = field(default_factory=list)
    log_path: Path = Path("/dev/null")  # stdout+stderr, CRI log format is written by the runtime
    resources: Resources = field(default_factory=Resources)
    security: Security = field(default_factory=Security)
    tty: bool = False
    stdin: bool = False
    labels: dict[str, str] = field(default_factory=dict)  # stored with the container, returned by list
    pid_namespace: str = ""  # join this PID namespace (an ephemeral container's target) instead of a new one
    sysctls: dict[str, str] = field(default_factory=dict)  # set in the pod's IPC/network namespaces


@dataclass
class ContainerState:
    id: str
    pod_uid: str
    name: str
    status: ContainerStatus
    pid: int | None = None
    exit_code: int | None = None
    started_at: float | None = None  # unix time
    finished_at: float | None = None
    oom_killed: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerStats:
    cpu_usage_ns: int = 0
    memory_working_set_bytes: int = 0


class RuntimeError_(Exception):
    """The runtime failed to do what was asked (message says what and why)."""


class Runtime(Protocol):
    name: str  # "oci" | "raw" | "cri"
    isolates: bool  # False for raw: node status and events say so

    async def create_sandbox(self, config: SandboxConfig) -> None: ...

    async def remove_sandbox(self, pod_uid: str) -> None: ...

    async def start_container(self, sandbox: SandboxConfig, config: ContainerConfig) -> ContainerState: ...

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after the grace period."""

    async def remove_container(self, container_id: str) -> None: ...

    async def state(self, container_id: str) -> ContainerState: ...

    async def list_containers(self) -> list[ContainerState]:
        """Everything this runtime still has, running or exited (used to re-adopt)."""

    async def exec(self, container_id: str, command: list[str], io: StreamIO) -> int: ...

    async def attach(self, container_id: str, io: StreamIO) -> int: ...

    async def stats(self, container_id: str) -> ContainerStats: ...

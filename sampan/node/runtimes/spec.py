"""Builds the OCI runtime spec (config.json, spec 1.0) for one container of a sandbox."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

from sampan.node.runtimes.base import ContainerConfig, Mount, Resources, SandboxConfig

# The capabilities containerd gives a container by default.
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
            "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
# Like runc's default spec: kernel interfaces a container must not read or write.
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def current_oom_score_adj() -> int:
    try:
        return int(Path("/proc/self/oom_score_adj").read_text())
    except (OSError, ValueError):
        return 0


def _cap_name(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def capabilities(add: list[str], drop: list[str], privileged: bool) -> list[str]:
    if privileged:
        return list(ALL_CAPS)
    dropped = {_cap_name(c) for c in drop}
    added = [_cap_name(c) for c in add]
    caps = [] if "CAP_ALL" in dropped else list(DEFAULT_CAPS)
    caps += ALL_CAPS if "CAP_ALL" in added else added
    # Like containerd: additions first, then explicit drops win.
    return [c for c in dict.fromkeys(caps) if c not in dropped and c != "CAP_ALL"]


def _mount(m: Mount) -> dict[str, Any]:
    if m.kind == "bind":
        opts = ["rbind", "ro" if m.read_only else "rw"]
        return {"destination": m.destination, "type": "bind", "source": m.source, "options": opts}
    opts = ["nosuid", "nodev"] + (["ro"] if m.read_only else [])
    return {"destination": m.destination, "type": m.kind, "source": m.source or m.kind, "options": opts}


def base_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def linux_resources(r: Resources, swap: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    cpu: dict[str, Any] = {}
    if r.cpu_shares is not None:
        cpu["shares"] = r.cpu_shares
    if r.cpu_quota_us:
        cpu["quota"] = r.cpu_quota_us
        cpu["period"] = r.cpu_period_us
    if cpu:
        out["cpu"] = cpu
    if r.memory_limit_bytes:
        out["memory"] = {"limit": r.memory_limit_bytes}
        if swap:
            out["memory"]["swap"] = r.memory_limit_bytes
    if r.pids_limit:
        out["pids"] = {"limit": r.pids_limit}
    return out


def oci_spec(sandbox: SandboxConfig, config: ContainerConfig, sandbox_dir: Path, cgroup_path: str,
             swap: bool = False, terminal: bool = False) -> dict[str, Any]:
    """`terminal`: runc makes the container's pty (conmon receives it); else the shim's pty or pipes are its stdio."""
    sec = config.security
    env = dict(config.env)
    env.setdefault("PATH", DEFAULT_PATH)
    if config.tty:
        env.setdefault("TERM", "xterm")
    env.setdefault("HOSTNAME", (sandbox.hostname or sandbox.name)[:63])
    caps = capabilities(sec.capabilities_add, sec.capabilities_drop, sec.privileged)
    user: dict[str, Any] = {"uid": sec.run_as_user or 0, "gid": sec.run_as_group or 0}
    if sec.supplemental_groups:
        user["additionalGids"] = list(sec.supplemental_groups)
    # Raise the soft open-files limit to the hard one the agent has (never above it).
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576
    process = {
        "terminal": terminal and config.tty,
        "user": user,
        "args": list(config.args),
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": config.working_dir or "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")}
        | ({"ambient": caps} if user["uid"] == 0 else {}),
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": sec.no_new_privileges and not sec.privileged,
    }
    adj = config.resources.oom_score_adj
    if adj is not None and adj >= current_oom_score_adj():
        process["oomScoreAdj"] = adj  # lowering it would need privileges we must not ask for
    mounts = base_mounts(sec.privileged)
    own = {m.destination for m in config.mounts}
    for name, dest in (("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"), ("resolv.conf", "/etc/resolv.conf")):
        if dest not in own:
            mounts.append({"destination": dest, "type": "bind", "source": str(sandbox_dir / name),
                           "options": ["rbind", "rw"]})
    mounts += [_mount(m) for m in config.mounts]
    # A namespace left out of the list is the node's own (hostPID, hostIPC).
    namespaces: list[dict[str, str]] = [{"type": "mount"}, {"type": "uts", "path": str(sandbox_dir / "uts")}]
    if config.pid_namespace:
        namespaces.append({"type": "pid", "path": config.pid_namespace})
    elif sandbox.share_process_namespace:
        namespaces.append({"type": "pid", "path": str(sandbox_dir / "pid")})
    elif not sandbox.host_pid:
        namespaces.append({"type": "pid"})
    if not sandbox.host_ipc:
        namespaces.append({"type": "ipc", "path": str(sandbox_dir / "ipc")})
    if not sandbox.host_network:
        namespaces.append({"type": "network", "path": sandbox.netns_path or str(sandbox_dir / "net")})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "sysctl": dict(config.sysctls),
        "resources": linux_resources(config.resources, swap),
        "cgroupsPath": cgroup_path,
    }
    if sec.seccomp is not None:
        linux["seccomp"] = sec.seccomp
    if sec.privileged:
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(config.rootfs), "readonly": sec.read_only_rootfs},
        "mounts": mounts,
        "linux": linux,
        "annotations": {"io.kubernetes.pod.uid": config.pod_uid, "io.kubernetes.container.name": config.name},
    }

"""Seccomp profiles of containers (``securityContext.seccompProfile``, the container's over the
pod's): ``Unconfined`` (also the default, as the kubelet's), ``RuntimeDefault`` and
``Localhost`` (a JSON profile under ``DATA/agent/seccomp/``, in the OCI form or Docker's form
with ``archMap``/``includes``/``excludes``). Privileged containers are never filtered.

Sampan's RuntimeDefault allows every system call except those that reach beyond the container:
kernel modules, rebooting, clocks, swap, mounts and namespaces, keyrings, BPF and perf,
process_vm_* and the like. A call whose capability the container was given stays allowed (a
container with CAP_SYS_TIME may set the clock). Blocked calls fail with EPERM; ``clone3`` fails
with ENOSYS so that C libraries fall back to ``clone``, whose namespace flags are checked."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
EPERM, ENOSYS = 1, 38

# System calls blocked by default, and the capability that allows each group again.
_BLOCKED: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": ("mount", "umount", "umount2", "pivot_root", "setns", "unshare", "quotactl", "quotactl_fd",
                      "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
                      "bpf", "perf_event_open", "lookup_dcookie", "fanotify_init", "name_to_handle_at"),
    "CAP_SYS_BOOT": ("reboot", "kexec_load", "kexec_file_load"),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module", "create_module", "query_module",
                       "get_kernel_syms"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime",
                     "clock_adjtime64", "adjtimex"),
    "CAP_SYS_PTRACE": ("process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_NICE": ("mbind", "set_mempolicy", "move_pages", "get_mempolicy"),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYSLOG": ("syslog",),
    "": ("swapon", "swapoff", "add_key", "request_key", "keyctl", "userfaultfd", "uselib", "ustat", "sysfs",
         "_sysctl", "nfsservctl", "vm86", "vm86old", "io_uring_setup", "io_uring_enter", "io_uring_register"),
}
# clone(2) flags that make namespaces: refused without CAP_SYS_ADMIN.
_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
           "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}
# The node's architecture as seccomp and as Docker profiles' includes/excludes name it.
_NATIVE_SCMP = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_NATIVE_GO = {"x86_64": "amd64", "aarch64": "arm64"}


class ProfileError(Exception):
    """A Localhost profile that cannot be used (the container is not created)."""


def runtime_default(capabilities: set[str]) -> Obj:
    """Sampan's RuntimeDefault profile for a container holding ``capabilities``."""
    names = sorted(n for cap, group in _BLOCKED.items() if not cap or cap not in capabilities for n in group)
    syscalls: list[Obj] = [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
                           {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}]
    if "CAP_SYS_ADMIN" not in capabilities:
        syscalls += [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                      "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}
                     for flag in _NAMESPACE_FLAGS]
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": _ARCHES.get(platform.machine(), []),
            "syscalls": syscalls}


def _seccomp_profile(pod: Obj, spec: Obj) -> Obj:
    sc, psc = spec.get("securityContext") or {}, pod["spec"].get("securityContext") or {}
    return sc.get("seccompProfile") or psc.get("seccompProfile") or {}


def _from_docker(profile: Obj, capabilities: set[str]) -> Obj:
    """Docker's profile form: architectures from archMap, rules kept when their includes and
    excludes (capabilities, architectures) hold for this container."""
    machine = _NATIVE_SCMP.get(platform.machine(), "")
    native = _NATIVE_GO.get(platform.machine(), platform.machine())
    arches = [a for m in profile.get("archMap") or [] if m.get("architecture") == machine
              for a in [m["architecture"], *(m.get("subArchitectures") or [])]]

    def applies(rule: Obj) -> bool:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= capabilities:
            return False
        if inc.get("arches") and native not in inc["arches"]:
            return False
        if exc.get("caps") and set(exc["caps"]) & capabilities:
            return False
        return not (exc.get("arches") and native in exc["arches"])

    rules = [{k: v for k, v in r.items() if k not in ("includes", "excludes", "comment")}
             for r in profile.get("syscalls") or [] if applies(r)]
    out = {k: v for k, v in profile.items() if k not in ("archMap", "syscalls")}
    return {**out, "architectures": arches, "syscalls": rules}


def profile_for(pod: Obj, spec: Obj, capabilities: set[str], privileged: bool, root: Path) -> Obj | None:
    """The OCI ``linux.seccomp`` of a container, or None (unfiltered). Blocking for Localhost."""
    if privileged:
        return None
    wanted = _seccomp_profile(pod, spec)
    kind = wanted.get("type") or "Unconfined"
    if kind == "RuntimeDefault":
        return runtime_default(capabilities)
    if kind != "Localhost":
        return None
    relative = str(wanted.get("localhostProfile") or "")
    path = (root / relative).resolve()
    if not relative or relative.startswith("/") or root.resolve() not in path.parents:
        raise ProfileError(f"invalid localhostProfile {relative!r}: a path below {root}")
    try:
        profile = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProfileError(f'cannot load seccomp profile "{path}": {exc}') from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise ProfileError(f'cannot load seccomp profile "{path}": no defaultAction')
    return _from_docker(profile, capabilities) if "archMap" in profile else profile

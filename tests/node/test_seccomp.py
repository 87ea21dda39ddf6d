"""Seccomp profiles: which one a container gets, Sampan's RuntimeDefault (calls given back by
capabilities), Localhost profiles in the OCI and Docker forms, and bad profiles."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from sampan.node.seccomp import ProfileError, profile_for, runtime_default


def pod(pod_profile: dict | None = None, container_profile: dict | None = None) -> tuple[dict, dict]:
    container = {"name": "c", "securityContext": {"seccompProfile": container_profile} if container_profile else {}}
    return ({"metadata": {"name": "p"}, "spec": {"securityContext": {"seccompProfile": pod_profile} if pod_profile
                                                 else {}, "containers": [container]}}, container)


def blocked(profile: dict) -> set[str]:
    return {n for rule in profile["syscalls"] if not rule.get("args") for n in rule["names"]}


def test_which_profile(tmp_path: Path) -> None:
    assert profile_for(*pod(), set(), False, tmp_path) is None  # Unconfined by default, as the kubelet
    default = profile_for(*pod({"type": "RuntimeDefault"}), set(), False, tmp_path)
    assert default is not None and default["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile_for(*pod({"type": "RuntimeDefault"}, {"type": "Unconfined"}), set(), False, tmp_path) is None
    assert profile_for(*pod({"type": "RuntimeDefault"}), set(), True, tmp_path) is None  # privileged


def test_runtime_default_blocks_what_reaches_beyond_the_container() -> None:
    plain = runtime_default({"CAP_CHOWN", "CAP_KILL"})
    assert {"mount", "unshare", "setns", "reboot", "init_module", "kexec_load", "settimeofday", "bpf", "keyctl",
            "swapon", "userfaultfd", "io_uring_setup"} <= blocked(plain)
    assert not {"read", "write", "openat", "ptrace", "clone", "execve"} & blocked(plain)
    clone3 = next(r for r in plain["syscalls"] if r["names"] == ["clone3"])
    assert clone3["errnoRet"] == 38  # ENOSYS: the C library falls back to clone
    namespace_rules = [r for r in plain["syscalls"] if r["names"] == ["clone"]]
    assert len(namespace_rules) == 7 and all(r["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" for r in namespace_rules)
    timekeeper = runtime_default({"CAP_SYS_TIME", "CAP_SYS_ADMIN"})
    assert not {"settimeofday", "clock_settime", "mount", "unshare"} & blocked(timekeeper)
    assert "reboot" in blocked(timekeeper) and not [r for r in timekeeper["syscalls"] if r["names"] == ["clone"]]


def test_localhost_profiles(tmp_path: Path) -> None:
    oci = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "oci.json").write_text(json.dumps(oci))
    got = profile_for(*pod(None, {"type": "Localhost", "localhostProfile": "profiles/oci.json"}), set(), False,
                      tmp_path)
    assert got == oci
    machine = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(platform.machine(), "none")
    go_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    docker = {"defaultAction": "SCMP_ACT_ERRNO",
              "archMap": [{"architecture": machine, "subArchitectures": ["SUB"]}],
              "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                           {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                           {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
                           {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [go_arch]}},
                           {"names": ["s390_pci_mmio_read"], "action": "SCMP_ACT_ALLOW",
                            "includes": {"arches": ["s390x"]}}]}
    (tmp_path / "docker.json").write_text(json.dumps(docker))
    got = profile_for(*pod({"type": "Localhost", "localhostProfile": "docker.json"}), {"CAP_CHOWN"}, False, tmp_path)
    assert got is not None and got["architectures"] == [machine, "SUB"]
    assert [r["names"] for r in got["syscalls"]] == [["read"], ["arch_prctl"]]  # what applies to this node
    for bad in ("missing.json", "../escape.json", "/etc/passwd", ""):
        with pytest.raises(ProfileError):
            profile_for(*pod({"type": "Localhost", "localhostProfile": bad}), set(), False, tmp_path)

"""Pod sysctls: the node's allowlist (safe set, --allowed-unsafe-sysctls patterns, namespaces
shared with the node) and the API's checks of their names."""

from __future__ import annotations

import pytest

from sampan.api.validation.builtin import validate_builtin
from sampan.node.sysctls import Allowlist, dotted, namespace_of, pod_sysctls


def pod(*names: str, **spec: object) -> dict:
    sysctls = [{"name": n, "value": "1"} for n in names]
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "securityContext": {"sysctls": sysctls},
                     **spec}}


def test_names_and_namespaces() -> None:
    assert dotted("net/ipv4/conf/eth0.100/forwarding") == "net.ipv4.conf.eth0/100.forwarding"
    assert dotted("kernel.shm_rmid_forced") == "kernel.shm_rmid_forced"
    assert [namespace_of(n) for n in ("kernel.shmmax", "kernel.msgmax", "kernel.sem", "fs.mqueue.msg_max",
                                      "net.core.somaxconn", "vm.swappiness", "kernel.pid_max")] == [
        "ipc", "ipc", "ipc", "ipc", "net", None, None]
    assert pod_sysctls(pod("kernel/shm_rmid_forced")) == {"kernel.shm_rmid_forced": "1"}


def test_safe_set_unsafe_patterns_and_host_namespaces() -> None:
    default = Allowlist()
    assert default.refusal(pod("net.ipv4.ip_local_port_range", "kernel.shm_rmid_forced")) is None
    assert default.refusal(pod("net.core.somaxconn")) == (
        "SysctlForbidden", 'forbidden sysctl: "net.core.somaxconn" not allowlisted')
    allowed = Allowlist(["net.core.somaxconn", "kernel.msg*"])
    assert allowed.refusal(pod("net.core.somaxconn", "kernel.msgmax")) is None
    assert allowed.refusal(pod("net.core.somaxconn", hostNetwork=True)) == (
        "SysctlForbidden", 'forbidden sysctl: "net.core.somaxconn" not allowed with host net enabled')
    assert allowed.refusal(pod("kernel.msgmnb", hostIPC=True)) == (
        "SysctlForbidden", 'forbidden sysctl: "kernel.msgmnb" not allowed with host ipc enabled')
    with pytest.raises(ValueError, match="not known to be namespaced"):
        Allowlist(["vm.swappiness"])


def test_api_checks_sysctl_names() -> None:
    causes = validate_builtin(pod("net.core.somaxconn", "Bad_Name", "net.core.somaxconn"), "", "Pod")
    found = {(c["reason"], c["field"]) for c in causes}
    assert found == {("FieldValueInvalid", "spec.securityContext.sysctls[1].name"),
                     ("FieldValueDuplicate", "spec.securityContext.sysctls[2].name")}
    assert validate_builtin(pod("net/ipv4/conf/eth0.100/forwarding"), "", "Pod") == []

"""Pod sysctls (``spec.securityContext.sysctls``), admitted like the kubelet does: the safe
ones are always allowed, others only when ``--allowed-unsafe-sysctls`` names them (a name or
a ``prefix*`` pattern), and only sysctls the kernel keeps per IPC or network namespace; none of
a namespace the pod shares with the node (hostIPC, hostNetwork). The runtime then sets them in
the pod's namespaces (OCI ``linux.sysctl``)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

# Namespaced and without effect on other pods (the kubelet's safe set on kernels >= 4.5).
SAFE = ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time")
FORBIDDEN_REASON = "SysctlForbidden"


def dotted(name: str) -> str:
    """``net/ipv4/conf/eth0.100/forwarding`` -> ``net.ipv4.conf.eth0/100.forwarding``."""
    if "/" not in name:
        return name
    return name.replace(".", "\0").replace("/", ".").replace("\0", "/")


def namespace_of(name: str) -> str | None:
    """The namespace that holds a sysctl: "ipc", "net", or None (node-wide)."""
    if name == "kernel.sem" or name.startswith(("kernel.shm", "kernel.msg", "fs.mqueue.")):
        return "ipc"
    if name.startswith("net."):
        return "net"
    return None


class Allowlist:
    def __init__(self, unsafe: tuple[str, ...] | list[str] = ()) -> None:
        self.names: dict[str, str] = {}
        self.prefixes: dict[str, str] = {}
        for pattern in (*SAFE, *unsafe):
            name = dotted(pattern.strip())
            prefix = name[:-1] if name.endswith("*") else None
            namespace = namespace_of(prefix if prefix is not None else name)
            if not name or namespace is None:
                raise ValueError(f"the sysctl {pattern!r} is not known to be namespaced")
            if prefix is not None:
                self.prefixes[prefix] = namespace
            else:
                self.names[name] = namespace

    def _check(self, name: str, host_network: bool, host_ipc: bool) -> str | None:
        namespace = self.names.get(name) or next(
            (ns for prefix, ns in self.prefixes.items() if name.startswith(prefix)), None)
        if namespace is None:
            return f'"{name}" not allowlisted'
        if (namespace == "ipc" and host_ipc) or (namespace == "net" and host_network):
            return f'"{name}" not allowed with host {namespace} enabled'
        return None

    def refusal(self, pod: Obj) -> tuple[str, str] | None:
        """(reason, message) when the node must not run the pod for its sysctls."""
        spec = pod.get("spec") or {}
        for item in (spec.get("securityContext") or {}).get("sysctls") or []:
            problem = self._check(dotted(str(item.get("name", ""))), bool(spec.get("hostNetwork")),
                                  bool(spec.get("hostIPC")))
            if problem:
                return FORBIDDEN_REASON, f"forbidden sysctl: {problem}"
        return None


def pod_sysctls(pod: Obj) -> dict[str, str]:
    """What the runtime sets in the pod's namespaces."""
    items = ((pod.get("spec") or {}).get("securityContext") or {}).get("sysctls") or []
    return {dotted(str(i.get("name", ""))): str(i.get("value", "")) for i in items if i.get("name")}

"""A tiny test cluster network: a "node" netns holding a bridge, and "pod" netns on it
running busybox httpd, each serving its own name. Everything is torn down in ``close``."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = "/bin/busybox"


def available() -> str | None:
    """Why the netns tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} missing"
    if not os.path.exists(BUSYBOX):
        return "busybox missing"
    return None


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


@dataclass
class Pod:
    name: str
    netns: str
    ip: str
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class TestNet:
    __test__ = False  # not a test class

    prefix: str = field(default_factory=lambda: f"spx{secrets.token_hex(3)}")
    node_ip: str = "198.18.0.1"
    pods: list[Pod] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def node_ns(self) -> str:
        return f"{self.prefix}-node"

    def setup_node(self, workdir: Path) -> None:
        self.workdir = workdir
        sh("ip", "netns", "add", self.node_ns)
        node = ("ip", "netns", "exec", self.node_ns)
        sh(*node, "ip", "link", "set", "lo", "up")
        sh(*node, "ip", "link", "add", "br0", "type", "bridge")
        sh(*node, "ip", "addr", "add", f"{self.node_ip}/24", "dev", "br0")
        sh(*node, "ip", "link", "set", "br0", "up")
        sh(*node, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def add_pod(self, index: int, serve: bool = True) -> Pod:
        name = f"{self.prefix}-p{index}"
        ip = f"198.18.0.{index + 10}"
        self.pods.append(Pod(name, name, ip))  # registered first so close() removes it
        sh("ip", "netns", "add", name)
        host_if, pod_if = f"{self.prefix}h{index}", f"{self.prefix}c{index}"
        self.links.append(host_if)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if)
        sh("ip", "link", "set", host_if, "netns", self.node_ns)
        sh("ip", "link", "set", pod_if, "netns", name)
        node = ("ip", "netns", "exec", self.node_ns)
        sh(*node, "ip", "link", "set", host_if, "master", "br0")
        sh(*node, "ip", "link", "set", host_if, "up")
        # Like the CNI bridge plugin's hairpinMode, so a pod can reach itself via its service.
        sh(*node, "ip", "link", "set", host_if, "type", "bridge_slave", "hairpin", "on")
        pod = ("ip", "netns", "exec", name)
        sh(*pod, "ip", "link", "set", "lo", "up")
        sh(*pod, "ip", "link", "set", pod_if, "name", "eth0")
        sh(*pod, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        sh(*pod, "ip", "link", "set", "eth0", "up")
        sh(*pod, "ip", "route", "add", "default", "via", self.node_ip)
        p = self.pods[-1]
        if serve:
            assert self.workdir is not None
            root = self.workdir / name
            root.mkdir()
            (root / "index.html").write_text(f"{name}\n")
            p.proc = subprocess.Popen(
                ["ip", "netns", "exec", name, BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(root)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return p

    def close(self) -> None:
        for p in self.pods:
            if p.proc and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
            sh("ip", "netns", "del", p.netns, check=False)
        sh("ip", "netns", "del", self.node_ns, check=False)
        for link in self.links:  # only left in the host netns when setup failed half-way
            if sh("ip", "link", "show", link, check=False).returncode == 0:
                sh("ip", "link", "del", link, check=False)


async def curl(netns: str, url: str, timeout: float = 3.0) -> tuple[int, str]:
    """(exit code, body) of one request from inside ``netns``; curl exit 7 = refused."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, "curl", "-s", "--max-time", str(timeout), url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode().strip()


async def wait_serving(netns: str, url: str) -> None:
    for _ in range(100):
        code, _ = await curl(netns, url, 1.0)
        if code == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")

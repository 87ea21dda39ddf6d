"""The node's service networking, run next to the node agent: the service proxy, NetworkPolicy
enforcement, the cluster DNS server (plus the ``kube-dns`` Service pointing at it) and, on the
server node, the ingress controller.

Each part starts on its own: a machine without ``nft`` (or nginx, or a free port 80) still runs
pods; what is missing is logged and reported as a Warning event on the Node. ``stop()`` removes
what the parts programmed into the kernel (the nftables tables, the service CIDR route) and
stops nginx; the pods keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from sampan.client.events import EventRecorder
from sampan.client.interface import NODES, Client
from sampan.proxy.dns_resolvconf import pod_resolv_conf
from sampan.proxy.dns_service import dns_cluster_ip

log = logging.getLogger(__name__)
Obj = dict[str, Any]

COMPONENT = "sampan-node-network"
# `sampan server --disable NAME` turns these off (like K3s's --disable traefik).
OPTIONAL = ("ingress", "servicelb", "network-policy", "coredns", "kube-proxy")


def host_resolv_text() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


_HOST_RESOLV: str | None = None


def resolv_conf_for(pod: Obj, cluster_dns_ip: str | None, cluster_domain: str = "cluster.local") -> str:
    """A pod's resolv.conf (dnsPolicy, dnsConfig) with the node's resolv.conf read once."""
    global _HOST_RESOLV
    if _HOST_RESOLV is None:
        _HOST_RESOLV = host_resolv_text()  # a tiny file read once; later calls cost nothing
    return pod_resolv_conf(pod, cluster_dns_ip, cluster_domain, _HOST_RESOLV)


def pod_gateway(pod_cidr: str) -> str:
    """The bridge address of the node's pod CIDR (what the CNI bridge plugin gives ``sampan0``)."""
    return str(next(ipaddress.ip_network(pod_cidr, strict=False).hosts()))


async def _run(*argv: str) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        return 127, str(exc)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


class NodeNetworkServices:
    def __init__(
        self,
        client: Client,
        node_name: str,
        node_ip: str,
        cluster_cidr: str,
        service_cidr: str,
        data_dir: Path | str,
        *,
        ingress: bool = False,
        ingress_http_port: int = 80,
        ingress_https_port: int = 443,
        ingress_bind: str = "0.0.0.0",
        disabled: tuple[str, ...] | list[str] = (),
        dns_port: int = 53,
        pod_cidr_timeout: float = 120.0,
        proxy_table: str = "sampan-proxy",
        netpol_table: str = "sampan-netpol",
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.cluster_cidr = cluster_cidr
        self.service_cidr = service_cidr
        self.data_dir = Path(data_dir)
        self.disabled = set(disabled)
        self.ingress_enabled = ingress and "ingress" not in self.disabled
        self.ingress_http_port, self.ingress_https_port = ingress_http_port, ingress_https_port
        self.ingress_bind = ingress_bind
        self.dns_port = dns_port
        self.pod_cidr_timeout = pod_cidr_timeout
        self.proxy_table, self.netpol_table = proxy_table, netpol_table
        # What pods' resolv.conf names (the kube-dns ClusterIP); None: pods get the host's.
        self.dns_ip = None if "coredns" in self.disabled else dns_cluster_ip(service_cidr)
        self.recorder = EventRecorder(client, COMPONENT, host=node_name)
        self.proxier: Any = None
        self.netpol: Any = None
        self.dns: Any = None
        self.ingress: Any = None
        self.errors: dict[str, str] = {}  # part -> why it is not running
        # One informer per resource for all parts (Services and EndpointSlices for the proxy
        # and DNS, Pods for DNS and NetworkPolicy): one watch and one cached copy each, kept
        # without managedFields (see sampan/client/compact.py).
        self.informers: Any = None
        self.started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._dns_task: asyncio.Task[None] | None = None

    # -- start ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Starts the parts in the background (the proxy waits for the server's caches, which
        must not hold up the agent); ``started`` is set when every part ran or failed."""
        if self._task is None:
            self._task = asyncio.create_task(self._start_all(), name="node network start")

    async def _start_all(self) -> None:
        from sampan.client.compact import informer_transform
        from sampan.client.informer import InformerFactory

        if self.informers is None:
            self.informers = InformerFactory(self.client, transform=informer_transform())
            self.informers.start()  # informers the parts ask for later start right away
        root = os.geteuid() == 0
        has_nft = shutil.which("nft") is not None
        if root:
            await self._enable_forwarding()
        if "kube-proxy" not in self.disabled:
            if not root or not has_nft:
                self._failed("proxy", "the service proxy needs root and nft (nftables)")
            else:
                await self._start("proxy", self._start_proxy)
        if "network-policy" not in self.disabled:
            if not root or not has_nft:
                self._failed("netpol", "NetworkPolicy enforcement needs root and nft (nftables)")
            else:
                await self._start("netpol", self._start_netpol)
        if "coredns" not in self.disabled:
            # The DNS address is the pod bridge's: known once node IPAM gave the node its podCIDR.
            self._dns_task = asyncio.create_task(self._start("dns", self._start_dns), name="cluster dns start")
        if self.ingress_enabled:
            await self._start("ingress", self._start_ingress)
        if self._dns_task is not None:
            await self._dns_task
        self.started.set()

    async def _start(self, part: str, starter: Any) -> None:
        try:
            await starter()
            self.errors.pop(part, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one missing part must not take the node down
            log.exception("node network: %s did not start", part)
            self._failed(part, f"{part} did not start: {exc}")

    def _failed(self, part: str, message: str) -> None:
        self.errors[part] = message
        log.warning("node network: %s", message)
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "uid": self.node_name}}
        self.recorder.event(node, "Warning", "NetworkServiceFailed", message[:1000])

    async def _enable_forwarding(self) -> None:
        # Pod traffic and DNATed service traffic are routed by this node.
        def write() -> None:
            path = Path("/proc/sys/net/ipv4/ip_forward")
            if path.read_text().strip() != "1":
                path.write_text("1\n")

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.warning("node network: cannot enable net.ipv4.ip_forward: %s", exc)

    async def _start_proxy(self) -> None:
        from sampan.proxy.proxier import Proxier

        proxier = Proxier(self.client, self.node_name, [self.node_ip], self.cluster_cidr, self.service_cidr,
                          table=self.proxy_table, informers=self.informers)
        self.proxier = proxier
        await proxier.start()

    async def _start_netpol(self) -> None:
        from sampan.proxy.netpol import NetworkPolicyController

        self.netpol = NetworkPolicyController(self.client, self.node_name, table=self.netpol_table,
                                              informers=self.informers)
        await self.netpol.start()

    async def _pod_cidr(self) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pod_cidr_timeout
        while loop.time() < deadline:
            with contextlib.suppress(Exception):
                node = await self.client.get(NODES, self.node_name)
                cidr = (node.get("spec") or {}).get("podCIDR")
                if cidr:
                    return str(cidr)
            await asyncio.sleep(0.5)
        return None

    async def _start_dns(self) -> None:
        from sampan.proxy.dns import ClusterDNS, ensure_dns_service

        cidr = await self._pod_cidr() if os.geteuid() == 0 else None
        listen = pod_gateway(cidr) if cidr else self.node_ip
        if not cidr:
            log.warning("node network: no podCIDR for %s: cluster DNS listens on %s", self.node_name, listen)
        dns = ClusterDNS(self.client, listen_ip=listen, port=self.dns_port, informers=self.informers)
        try:
            await dns.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await dns.stop()  # its informers (the sockets were not bound)
            raise
        self.dns = dns
        await ensure_dns_service(self.client, self.service_cidr, listen, dns.port)
        log.info("cluster DNS %s -> %s:%d", self.dns_ip, listen, dns.port)

    async def _start_ingress(self) -> None:
        from sampan.ingress.controller import IngressController

        ingress = IngressController(self.client, self.data_dir, self.ingress_http_port, self.ingress_https_port,
                                    self.ingress_bind, [self.node_ip], data_path="auto")
        self.ingress = ingress
        try:
            await ingress.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await ingress.stop()  # informers and a half-started nginx
            self.ingress = None
            raise

    # -- stop ----------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stops every part and removes the node's tables and route (the pods keep running)."""
        for task in (self._task, self._dns_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        # Reverse start order: nothing routes to a DNS server or backend that is already gone.
        parts = [("ingress", self.ingress, {}), ("dns", self.dns, {}),
                 ("netpol", self.netpol, {"delete_table": True}), ("proxy", self.proxier, {"delete_table": True})]
        for part, obj, kw in parts:
            if obj is None:
                continue
            try:
                await asyncio.wait_for(obj.stop(**kw), 15)
            except Exception as exc:  # noqa: BLE001 - stop the rest anyway
                log.warning("node network: stopping %s failed: %s", part, exc)
        if self.proxier is not None:
            await _run("ip", "route", "del", "local", self.service_cidr, "dev", "lo", "table", "local")
        if self.netpol is not None and shutil.which("nft"):
            # netpol deletes its table only when it wrote one; a table left by a crash goes too.
            await _run("nft", "delete", "table", "inet", self.netpol_table)
        self.ingress = self.dns = self.netpol = self.proxier = None
        if self.informers is not None:
            await self.informers.stop()
            self.informers = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.recorder.flush(), 2)
        await self.recorder.close()


def attach_network_services(agent: Any, options: dict[str, Any] | None) -> NodeNetworkServices | None:
    """Gives ``agent`` its network services (``options``: NodeNetworkServices keywords plus
    ``cluster_cidr`` and ``service_cidr``; None: none). The agent stops them in its stop()."""
    if options is None:
        return None
    opts = dict(options)
    net = NodeNetworkServices(agent.client, agent.node_name, agent.node_ip, opts.pop("cluster_cidr"),
                              opts.pop("service_cidr"), agent.data_dir, **opts)
    agent.network_services = net
    return net

"""The service proxy: informers on Services and EndpointSlices -> debounced full sync ->
one atomic ``nft -f -`` transaction (the whole table is replaced each time).

It also serves ``healthCheckNodePort`` for ``externalTrafficPolicy: Local`` services
(200 with the local endpoint count when this node has endpoints, else 503), which is
what cloud load balancers probe, like kube-proxy's service health server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from collections.abc import Sequence

from sampan.client.informer import Informer, InformerFactory
from sampan.client.interface import ENDPOINTSLICES, SERVICES, Client
from sampan.node import proc
from sampan.proxy.rules import NodeInfo, PortsCache, ServicePort, local_endpoints, render_ruleset
from sampan.proxy.ruleset import Ruleset, diff_text, full_text

log = logging.getLogger(__name__)

DEFAULT_TABLE = "sampan-proxy"


async def run(argv: Sequence[str], stdin: bytes | None = None) -> tuple[int, str]:
    # Through sampan.node.proc: no fork of the whole agent per `nft` (uvloop's subprocesses do).
    done = await proc.run(*argv, stdin=stdin, stderr=subprocess.STDOUT)
    return done.code, done.out.decode(errors="replace")


class Proxier:
    def __init__(
        self,
        client: Client,
        node_name: str,
        node_addresses: Sequence[str],
        cluster_cidr: str,
        service_cidr: str,
        table: str = DEFAULT_TABLE,
        netns: str | None = None,
        informers: InformerFactory | None = None,
        min_sync_interval: float = 0.2,
        health_host: str | None = "0.0.0.0",
        service_route: bool = True,
        full_sync_period: float = 3600.0,
    ) -> None:
        self.client = client
        self.node = NodeInfo(node_name, tuple(node_addresses), cluster_cidr, service_cidr)
        self.table = table
        self.netns = netns
        self.min_sync_interval = min_sync_interval
        self.health_host = health_host
        self.service_route = service_route
        # Partial syncs send only what changed; a periodic full replace repairs any drift.
        self.full_sync_period = full_sync_period
        self._applied: Ruleset | None = None
        self._ports = PortsCache()
        self._last_full = 0.0
        self.partial_syncs = 0
        self._own_factory = informers is None
        self.informers = informers or InformerFactory(client)
        self.services: Informer = self.informers.informer(SERVICES)
        self.slices: Informer = self.informers.informer(ENDPOINTSLICES)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._health: dict[int, asyncio.Server] = {}
        self._local_counts: dict[int, tuple[str, int]] = {}
        self.syncs = 0
        self.last_error = ""
        self.last_sync_seconds = 0.0
        for inf in (self.services, self.slices):
            inf.add_handler(
                on_add=lambda _o: self._dirty.set(),
                on_update=lambda _o, _n: self._dirty.set(),
                on_delete=lambda _o: self._dirty.set(),
            )

    def _cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    async def start(self) -> None:
        await self._prepare_node()
        if self._own_factory:
            self.informers.start()
        await self.services.wait_for_sync()
        await self.slices.wait_for_sync()
        await self.sync()
        self._task = asyncio.create_task(self._loop(), name=f"proxier-{self.table}")

    async def stop(self, delete_table: bool = False) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for server in self._health.values():
            server.close()
        self._health.clear()
        if self._own_factory:
            await self.informers.stop()
        if delete_table:
            await run(self._cmd("nft", "delete", "table", "ip", self.table))

    async def _prepare_node(self) -> None:
        # 127.0.0.1 -> NodePort DNAT needs the kernel to route loopback-sourced packets out.
        code, out = await run(self._cmd("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"))
        if code:
            log.warning("proxy: cannot enable route_localnet: %s", out.strip())
        if self.service_route:
            # Service addresses are routed to this node (so local clients can connect at all);
            # the filter rules reject every one that no service claims.
            code, out = await run(self._cmd("ip", "route", "replace", "local", self.node.service_cidr, "dev", "lo"))
            if code:
                log.warning("proxy: cannot add the service CIDR route: %s", out.strip())

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.min_sync_interval)  # coalesce bursts of updates
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - keep the proxy alive; retry on the next change
                log.exception("proxy sync failed")
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def sync(self) -> None:
        self._dirty.clear()
        started = time.perf_counter()
        ports = self._ports.ports(self.services.list(), self.slices.list())
        wanted = render_ruleset(self.table, ports, self.node)
        text = None
        if self._applied is not None and time.monotonic() - self._last_full < self.full_sync_period:
            text = diff_text(self._applied, wanted)
        if text is not None:
            code, out = await run(self._cmd("nft", "-f", "-"), text.encode()) if text else (0, "")
            if code:
                log.warning("proxy: partial sync failed, replacing the table: %s", out.strip()[:500])
                text = None
            else:
                self.partial_syncs += 1
        if text is None:
            code, out = await run(self._cmd("nft", "-f", "-"), full_text(wanted).encode())
            if code:
                self._applied = None
                self.last_error = out
                raise RuntimeError(f"nft -f failed: {out.strip()[:2000]}")
            self._last_full = time.monotonic()
        self._applied = wanted
        self.last_error = ""
        self.syncs += 1
        self.last_sync_seconds = time.perf_counter() - started
        await self._sync_health(ports)

    # -- healthCheckNodePort ---------------------------------------------------------
    async def _sync_health(self, ports: list[ServicePort]) -> None:
        if self.health_host is None:
            return
        counts: dict[int, tuple[str, int]] = {}
        for sp in ports:
            if sp.external_local and sp.health_check_node_port:
                name, count = counts.get(sp.health_check_node_port, (f"{sp.namespace}/{sp.name}", 0))
                counts[sp.health_check_node_port] = (name, max(count, len(local_endpoints(sp, self.node.name))))
        self._local_counts = counts
        for port in list(self._health):
            if port not in counts:
                self._health.pop(port).close()
        for port in counts:
            if port not in self._health:
                try:
                    self._health[port] = await asyncio.start_server(
                        lambda r, w, p=port: self._answer(r, w, p), self.health_host, port
                    )
                except OSError as exc:
                    log.warning("proxy: cannot serve healthCheckNodePort %d: %s", port, exc)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            name, count = self._local_counts.get(port, ("", 0))
            ns, _, svc = name.partition("/")
            body = json.dumps({"service": {"namespace": ns, "name": svc}, "localEndpoints": count}).encode()
            status = "200 OK" if count else "503 Service Unavailable"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

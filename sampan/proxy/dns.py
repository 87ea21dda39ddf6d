"""Cluster DNS: an in-process DNS server (UDP and TCP) authoritative for the cluster domain,
answering from informers over Services, EndpointSlices and Pods and forwarding every other
name to the host's resolvers. Pods reach it through the ``kube-dns`` Service (dns_service.py).

Wiring (node agent / server): ``dns = ClusterDNS(client, listen_ip=<bridge gateway or node
IP>)``; ``await dns.start()``; ``await ensure_dns_service(client, service_cidr, listen_ip)``;
``await dns.stop()`` at shutdown. ``pod_resolv_conf`` builds each sandbox's resolv.conf.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from pathlib import Path
from typing import Any

import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

from sampan.client.informer import InformerFactory
from sampan.client.interface import ENDPOINTSLICES, PODS, SERVICES, Client
from sampan.proxy.dns_records import Answer, ClusterRecords, Record, add_indexers, pod_ips
from sampan.proxy.dns_resolvconf import pod_resolv_conf
from sampan.proxy.dns_service import ensure_dns_service
from sampan.proxy.dns_wire import Forwarder, build_reply, error_reply, formerr, host_upstreams, max_size, to_wire

__all__ = ["ClusterDNS", "DNSHandler", "ensure_dns_service", "pod_resolv_conf"]

log = logging.getLogger(__name__)

CACHE_LIMIT = 10000
TCP_IDLE_SECONDS = 10.0
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux
IPV6_FREEBIND = 78


class DNSHandler:
    """Turns query bytes into reply bytes. Authoritative replies are cached by the query's
    bytes minus its id until any watched object changes (``invalidate``)."""

    def __init__(self, records: ClusterRecords, forwarder: Forwarder, cache_size: int = CACHE_LIMIT) -> None:
        self.records = records
        self.forwarder = forwarder
        self.cache_size = cache_size  # 0 turns the reply cache off
        self._cache: dict[tuple[bytes, bool], bytes] = {}

    def invalidate(self, *_: Any) -> None:
        self._cache.clear()

    def cached(self, data: bytes, tcp: bool) -> bytes | None:
        body = self._cache.get((data[2:], tcp))
        return None if body is None else data[:2] + body

    async def handle(self, data: bytes, tcp: bool) -> bytes | None:
        hit = self.cached(data, tcp)
        if hit is not None:
            return hit
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - any malformed input
            return formerr(data)
        limit = max_size(query, tcp)
        if query.flags & 0x8000:
            return None  # a response: never answer those
        if query.opcode() != dns.opcode.QUERY:
            return to_wire(error_reply(query, dns.rcode.NOTIMP), limit)
        if len(query.question) != 1:
            return to_wire(error_reply(query, dns.rcode.FORMERR), limit)
        question = query.question[0]
        qname = question.name.to_text()
        qtype = dns.rdatatype.to_text(question.rdtype)
        answer = self.records.lookup(qname, qtype)
        if answer.forward:
            reply = await self.forwarder.query(query, tcp)
            if reply is None:
                return to_wire(error_reply(query, dns.rcode.SERVFAIL), limit)
            reply.id = query.id
            return to_wire(reply, limit)
        extra = await self._chase(answer.chase, qtype) if answer.chase else []
        wire = to_wire(build_reply(query, answer, self.records.soa(), extra), limit)
        if not answer.chase and self.cache_size:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[(data[2:], tcp)] = wire[2:]
        return wire

    async def _chase(self, target: str, qtype: str) -> list[Record]:
        """Follows an ExternalName CNAME: inside the zone from the caches, else upstream."""
        seen: set[str] = set()
        out: list[Record] = []
        for _ in range(8):  # CNAME chain bound
            if target in seen:
                break
            seen.add(target)
            inner: Answer = self.records.lookup(target, qtype)
            if inner.forward:
                return out + await self.forwarder.resolve(target, qtype)
            out += inner.answers
            if not inner.chase:
                break
            target = inner.chase
        return out


def _socket(ip: str, port: int, kind: int) -> socket.socket:
    """A bound socket; IP_FREEBIND lets the server start before the bridge has its address."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        sock.bind((ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _dns_view(obj: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of a Service, EndpointSlice or Pod the records are built from."""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace"), meta.get("name"), meta.get("labels"), obj.get("addressType"),
            obj.get("endpoints"), obj.get("ports"), pod_ips(obj),
            None if "containers" in (obj.get("spec") or {}) else obj.get("spec"))


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, handler: DNSHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        hit = self.handler.cached(data, False)
        if hit is not None and self.transport is not None:
            self.transport.sendto(hit, addr)  # the common case answers without a task
            return
        task = asyncio.ensure_future(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr: Any) -> None:
        try:
            reply = await self.handler.handle(data, False)
        except Exception:  # noqa: BLE001 - one bad query must not stop the server
            log.exception("dns query failed")
            return
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class ClusterDNS:
    """The node's DNS server; ``port=0`` picks a free port (same number for UDP and TCP)."""

    def __init__(
        self,
        client: Client,
        listen_ip: str,
        port: int = 53,
        cluster_domain: str = "cluster.local",
        upstreams: list[tuple[str, int]] | None = None,
        resolv_conf: Path = Path("/etc/resolv.conf"),
        informers: InformerFactory | None = None,
        forward_timeout: float = 2.0,
        pods_verified: bool = True,
    ) -> None:
        self.client = client
        self.listen_ip = listen_ip
        self.port = port
        self.cluster_domain = cluster_domain
        self._own_factory = informers is None
        self.factory = informers or InformerFactory(client)
        services = self.factory.informer(SERVICES)
        slices = self.factory.informer(ENDPOINTSLICES)
        pods = self.factory.informer(PODS)
        self.informers = (services, slices, pods)
        add_indexers(services, slices, pods)
        self.records = ClusterRecords(services, slices, pods, cluster_domain, pods_verified)
        found = upstreams if upstreams is not None else host_upstreams(resolv_conf)
        # Never forward to ourselves.
        self.upstreams = [u for u in found if u != (listen_ip, port)]
        self.handler = DNSHandler(self.records, Forwarder(self.upstreams, forward_timeout))
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _UDP | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()

    async def start(self, sync_timeout: float | None = 60.0) -> None:
        for informer in self.informers:
            informer.add_handler(self.handler.invalidate, self._on_update, self.handler.invalidate)
        if self._own_factory:
            self.factory.start()
        for informer in self.informers:
            await informer.wait_for_sync(sync_timeout)
        await self._bind()
        log.info("cluster DNS for %s on %s:%d, upstreams %s", self.cluster_domain, self.listen_ip, self.port, self.upstreams)

    def _on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        # Pods change status all the time (probes, restarts) while their addresses rarely do:
        # keep the reply cache unless something a DNS answer is made of changed.
        if _dns_view(old) != _dns_view(new):
            self.handler.invalidate()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # port 0: the UDP port picked may be taken for TCP; try another
            udp = _socket(self.listen_ip, self.port, socket.SOCK_DGRAM)
            port = udp.getsockname()[1]
            try:
                tcp = _socket(self.listen_ip, port, socket.SOCK_STREAM)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            transport, protocol = await loop.create_datagram_endpoint(lambda: _UDP(self.handler), sock=udp)
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
            self._udp, self._udp_protocol, self.port = transport, protocol, port
            return
        raise OSError("no free port for both UDP and TCP")

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE_SECONDS)
                reply = await self.handler.handle(data, True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("dns tcp connection failed")
        finally:
            writer.close()
            if task is not None:
                self._conns.discard(task)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._udp_protocol is not None:
            for task in list(self._udp_protocol.tasks):
                task.cancel()
            await asyncio.gather(*self._udp_protocol.tasks, return_exceptions=True)
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None
        if self._own_factory:
            await self.factory.stop()

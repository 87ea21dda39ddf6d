"""Objects for the DNS tests: Services, EndpointSlices and Pods as the API serves them, and
caches indexed the way ClusterDNS indexes its informers."""

from __future__ import annotations

from typing import Any

from sampan.client.informer import NAMESPACE_INDEX, Cache, by_namespace
from sampan.client.interface import object_key
from sampan.proxy.dns_records import ClusterRecords, add_indexers

Obj = dict[str, Any]


def svc(name: str, ns: str = "default", cluster_ip: str | None = "198.19.0.20", ports: list[Obj] | None = None, **spec: Any) -> Obj:
    s: Obj = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}
    if cluster_ip is not None:
        s["clusterIP"] = cluster_ip
        s["clusterIPs"] = [cluster_ip]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": s}


def eps(service: str, endpoints: list[Obj], ns: str = "default", name: str | None = None, ports: list[Obj] | None = None) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service}-abc", "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def ep(ip: str, ready: bool = True, hostname: str | None = None) -> Obj:
    e: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


def pod(name: str, ip: str, ns: str = "default") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def caches(objs: list[Obj]) -> tuple[Cache, Cache, Cache]:
    services, slices, pods = Cache(), Cache(), Cache()
    for c in (services, slices, pods):
        c.add_indexer(NAMESPACE_INDEX, by_namespace)
    add_indexers(services, slices, pods)
    which = {"Service": services, "EndpointSlice": slices, "Pod": pods}
    for obj in objs:
        which[obj["kind"]].put(object_key(obj), obj)
    return services, slices, pods


def sample_objects() -> list[Obj]:
    """A ClusterIP Service, a headless StatefulSet-style Service, an ExternalName and pods."""
    return [
        svc("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
        eps("web", [ep("198.18.0.5"), ep("198.18.0.6", ready=False)]),
        svc("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        eps("db", [ep("198.18.0.7", hostname="db-0"), ep("198.18.0.8", hostname="db-1"), ep("198.18.0.9", ready=False, hostname="db-2")],
            ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        svc("empty", cluster_ip="None"),
        svc("ext", cluster_ip=None, type="ExternalName", externalName="Example.COM."),
        svc("inner", cluster_ip=None, type="ExternalName", externalName="web.default.svc.cluster.local"),
        svc("api", ns="other", cluster_ip="198.19.0.21"),
        pod("web-1", "198.18.0.5"),
        pod("db-0", "198.18.0.7"),
        pod("lonely", "198.18.0.30", ns="other"),
    ]


def sample_records() -> ClusterRecords:
    return ClusterRecords(*caches(sample_objects()))


class FakeUpstream:
    """A stand-in for the host's resolver on 127.0.0.x: answers ``names`` (name -> address),
    NXDOMAIN otherwise, over UDP and TCP; records what it was asked."""

    def __init__(self, names: dict[str, str], host: str = "127.0.0.2") -> None:
        self.names = {k.rstrip(".").lower(): v for k, v in names.items()}
        self.host = host
        self.port = 0
        self.asked: list[str] = []
        self._udp: Any = None
        self._tcp: Any = None

    def _reply(self, data: bytes) -> bytes:
        import dns.message
        import dns.rcode
        import dns.rrset

        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        name = q.question[0].name.to_text().rstrip(".").lower()
        self.asked.append(name)
        if name in self.names:
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", self.names[name]))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
        return r.to_wire()

    async def start(self) -> None:
        import asyncio

        outer = self

        class Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.transport.sendto(outer._reply(data), addr)

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                n = int.from_bytes(await reader.readexactly(2), "big")
                out = self._reply(await reader.readexactly(n))
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
            except asyncio.IncompleteReadError:
                pass
            finally:
                writer.close()

        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(Proto, local_addr=(self.host, 0))
        self.port = self._udp.get_extra_info("sockname")[1]
        self._tcp = await asyncio.start_server(tcp, self.host, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

"""The DNS server on 127.0.0.1 (random port) over a real registry, asked with dnspython's
client over UDP and TCP; names outside the zone go to a fake upstream on 127.0.0.2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from sampan.client.interface import ENDPOINTSLICES, PODS, SERVICES
from sampan.client.local import LocalClient
from sampan.proxy.dns import ClusterDNS, DNSHandler, _dns_view
from sampan.proxy.dns_wire import Forwarder
from tests.harness import eventually, memory_registry
from tests.proxy.dns_fixtures import FakeUpstream, ep, eps, svc


@pytest.fixture
async def client() -> AsyncIterator[LocalClient]:
    async with memory_registry(service_cidr="198.19.0.0/16") as reg:
        yield LocalClient(reg, field_manager="test")


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream({"example.com": "198.18.200.1"})
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def server(client: LocalClient, upstream: FakeUpstream) -> AsyncIterator[ClusterDNS]:
    await client.create(SERVICES, svc("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), "default")
    await client.create(SERVICES, svc("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]), "default")
    await client.create(
        ENDPOINTSLICES,
        eps("db", [ep("198.18.0.7", hostname="db-0"), ep("198.18.0.8", hostname="db-1")], ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        "default",
    )
    await client.create(SERVICES, svc("ext", cluster_ip=None, ports=[], type="ExternalName", externalName="example.com"), "default")
    dns_server = ClusterDNS(client, "127.0.0.1", port=0, upstreams=[(upstream.host, upstream.port)], forward_timeout=1.0)
    await dns_server.start()
    yield dns_server
    await dns_server.stop()


async def ask(server: ClusterDNS, name: str, qtype: str = "A", tcp: bool = False, **kw: Any) -> dns.message.Message:
    q = dns.message.make_query(name, qtype, **kw)
    if tcp:
        return await dns.asyncquery.tcp(q, "127.0.0.1", timeout=5, port=server.port)
    return await dns.asyncquery.udp(q, "127.0.0.1", timeout=5, port=server.port)


def texts(reply: dns.message.Message, rdtype: str | None = None) -> list[str]:
    return sorted(
        rd.to_text() for rrset in reply.answer for rd in rrset if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype)
    )


async def test_a_record_for_cluster_ip_service(server: ClusterDNS) -> None:
    r = await ask(server, "web.default.svc.cluster.local")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert texts(r) == ["198.19.0.20"]
    assert r.answer[0].ttl == 5
    r = await ask(server, "web.default.svc.cluster.local", tcp=True)
    assert texts(r) == ["198.19.0.20"]


async def test_aaaa_is_empty_noerror_with_soa(server: ClusterDNS) -> None:
    r = await ask(server, "web.default.svc.cluster.local", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []
    assert r.authority[0].rdtype == dns.rdatatype.SOA


async def test_nxdomain_carries_soa(server: ClusterDNS) -> None:
    r = await ask(server, "missing.default.svc.cluster.local")
    assert r.rcode() == dns.rcode.NXDOMAIN
    soa = r.authority[0]
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "cluster.local."
    assert soa[0].mname.to_text() == "ns.dns.cluster.local."


async def test_headless_and_hostname_records(server: ClusterDNS) -> None:
    assert texts(await ask(server, "db.default.svc.cluster.local")) == ["198.18.0.7", "198.18.0.8"]
    assert texts(await ask(server, "db-1.db.default.svc.cluster.local")) == ["198.18.0.8"]


async def test_srv_records(server: ClusterDNS) -> None:
    r = await ask(server, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert texts(r) == ["0 100 80 web.default.svc.cluster.local."]
    assert [rd.to_text() for rrset in r.additional for rd in rrset] == ["198.19.0.20"]
    r = await ask(server, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert texts(r) == ["0 50 5432 db-0.db.default.svc.cluster.local.", "0 50 5432 db-1.db.default.svc.cluster.local."]


async def test_ptr_for_service_and_pod(server: ClusterDNS, client: LocalClient) -> None:
    r = await ask(server, "20.0.19.198.in-addr.arpa", "PTR")
    assert texts(r) == ["web.default.svc.cluster.local."]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await client.create(PODS, pod, "default")
    await client.patch(PODS, "p", {"status": {"podIP": "198.18.0.44", "podIPs": [{"ip": "198.18.0.44"}]}}, "merge", "default", subresource="status")

    async def ptr() -> list[str]:
        return texts(await ask(server, "44.0.18.198.in-addr.arpa", "PTR"))

    assert await eventually(ptr) == ["198-18-0-44.default.pod.cluster.local."]
    assert texts(await ask(server, "198-18-0-44.default.pod.cluster.local")) == ["198.18.0.44"]


async def test_external_name_cname_chased_upstream(server: ClusterDNS, upstream: FakeUpstream) -> None:
    r = await ask(server, "ext.default.svc.cluster.local")
    assert texts(r, "CNAME") == ["example.com."]
    assert texts(r, "A") == ["198.18.200.1"]


async def test_other_names_are_forwarded(server: ClusterDNS, upstream: FakeUpstream) -> None:
    r = await ask(server, "example.com")
    assert texts(r) == ["198.18.200.1"]
    r = await ask(server, "nothing.example.org", tcp=True)
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert "nothing.example.org" in upstream.asked and "example.com" in upstream.asked


async def test_unreachable_upstream_is_servfail(server: ClusterDNS) -> None:
    dead = FakeUpstream({}, host="127.0.0.3")
    await dead.start()
    port = dead.port
    await dead.stop()  # nothing listens there now
    handler = DNSHandler(server.records, Forwarder([("127.0.0.3", port)], timeout=0.3))
    wire = await handler.handle(dns.message.make_query("example.net", "A").to_wire(), False)
    assert wire is not None and dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL


async def test_changes_show_up_without_stale_answers(server: ClusterDNS, client: LocalClient) -> None:
    assert texts(await ask(server, "web.default.svc.cluster.local")) == ["198.19.0.20"]
    await client.delete(SERVICES, "web", "default")

    async def gone() -> bool:
        return (await ask(server, "web.default.svc.cluster.local")).rcode() == dns.rcode.NXDOMAIN

    assert await eventually(gone)


async def test_big_answer_truncated_over_udp_then_tcp(server: ClusterDNS, client: LocalClient) -> None:
    await client.create(SERVICES, svc("big", cluster_ip="None"), "default")
    many = [ep(f"198.18.1.{i}") for i in range(1, 61)]
    await client.create(ENDPOINTSLICES, eps("big", many), "default")

    async def listed() -> dns.message.Message | None:
        r = await ask(server, "big.default.svc.cluster.local", tcp=True)
        return r if len(texts(r)) == 60 else None

    full = await eventually(listed)
    assert len(full.to_wire()) > 512
    udp = await ask(server, "big.default.svc.cluster.local")
    assert udp.flags & dns.flags.TC and udp.answer == []
    edns = await ask(server, "big.default.svc.cluster.local", use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC and len(texts(edns)) == 60


async def test_garbage_gets_formerr_or_nothing(server: ClusterDNS) -> None:
    assert await server.handler.handle(b"\x12", False) is None
    wire = await server.handler.handle(b"\x12\x34" + b"\x01\x00" + b"\x00\x05" + b"\x00" * 6 + b"\xff", False)
    assert wire is not None and wire[:2] == b"\x12\x34"
    assert dns.message.from_wire(wire).rcode() == dns.rcode.FORMERR


async def test_pod_status_churn_keeps_cache_but_address_change_updates(server: ClusterDNS, client: LocalClient) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await client.create(PODS, pod, "default")
    await client.patch(PODS, "q", {"status": {"podIP": "198.18.0.50", "podIPs": [{"ip": "198.18.0.50"}]}}, "merge", "default", subresource="status")

    async def named(ip: str) -> list[str]:
        return texts(await ask(server, f"{ip.replace('.', '-')}.default.pod.cluster.local"))

    assert await eventually(lambda: named("198.18.0.50")) == ["198.18.0.50"]
    assert texts(await ask(server, "web.default.svc.cluster.local")) == ["198.19.0.20"]
    before = await client.get(PODS, "q", "default")
    ready = await client.patch(PODS, "q", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "merge", "default", subresource="status")
    assert _dns_view(before) == _dns_view(ready)  # a readiness change does not drop cached replies
    await client.patch(PODS, "q", {"status": {"podIP": "198.18.0.51", "podIPs": [{"ip": "198.18.0.51"}]}}, "merge", "default", subresource="status")
    assert await eventually(lambda: named("198.18.0.51")) == ["198.18.0.51"]
    assert _dns_view(before) != _dns_view(await client.get(PODS, "q", "default"))
    assert (await ask(server, "198-18-0-50.default.pod.cluster.local")).rcode() == dns.rcode.NXDOMAIN


async def test_starts_before_its_address_exists(client: LocalClient) -> None:
    # the node agent may start DNS before the pod bridge has its gateway address
    early = ClusterDNS(client, "198.18.254.253", port=0, upstreams=[])
    await early.start()
    try:
        assert early.port > 0 and early._udp is not None and early._tcp is not None
    finally:
        await early.stop()


async def test_external_name_inside_the_zone_is_chased_locally(server: ClusterDNS, client: LocalClient, upstream: FakeUpstream) -> None:
    target = "web.default.svc.cluster.local"
    await client.create(SERVICES, svc("alias", cluster_ip=None, ports=[], type="ExternalName", externalName=target), "default")

    async def chased() -> dns.message.Message | None:
        r = await ask(server, "alias.default.svc.cluster.local")
        return r if texts(r, "A") else None

    r = await eventually(chased)
    assert texts(r, "CNAME") == [target + "."] and texts(r, "A") == ["198.19.0.20"]
    assert target not in upstream.asked

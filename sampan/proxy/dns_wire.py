"""DNS messages on the wire (dnspython): records -> rrsets, replies that fit the transport,
and forwarding to upstream resolvers."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from sampan.proxy.dns_records import Answer, Record

log = logging.getLogger(__name__)

UDP_LIMIT = 512  # without EDNS (RFC 1035)
EDNS_CAP = 4096
FORWARD_TIMEOUT = 2.0


_NAMES: dict[str, dns.name.Name] = {}
_RDATA: dict[tuple[str, Any], dns.rdata.Rdata] = {}
_MEMO_LIMIT = 50000


def _name(text: str) -> dns.name.Name:
    """Parsed names and rdata are immutable: keep them, parsing is most of the cost of a reply."""
    name = _NAMES.get(text)
    if name is None:
        if len(_NAMES) >= _MEMO_LIMIT:
            _NAMES.clear()
        name = _NAMES[text] = dns.name.from_text(text)
    return name


def _rdata_text(rec: Record) -> str:
    if rec.rtype == "SRV":
        prio, weight, port, target = rec.value
        return f"{prio} {weight} {port} {target}."
    if rec.rtype == "SOA":
        mname, rname, refresh, retry, expire, minimum = rec.value
        return f"{mname}. {rname}. 1 {refresh} {retry} {expire} {minimum}"
    if rec.rtype in ("CNAME", "PTR", "NS"):
        return f"{rec.value}."
    return str(rec.value)


def _rdata(rec: Record, rdtype: dns.rdatatype.RdataType) -> dns.rdata.Rdata:
    key = (rec.rtype, rec.value)
    rd = _RDATA.get(key)
    if rd is None:
        if len(_RDATA) >= _MEMO_LIMIT:
            _RDATA.clear()
        rd = _RDATA[key] = dns.rdata.from_text(dns.rdataclass.IN, rdtype, _rdata_text(rec))
    return rd


def add_records(section: list[dns.rrset.RRset], records: list[Record]) -> None:
    """Groups records into rrsets (same name and type) in order of first appearance."""
    by_key: dict[tuple[str, str], dns.rrset.RRset] = {}
    for rec in records:
        rrset = by_key.get((rec.name, rec.rtype))
        if rrset is None:
            rrset = dns.rrset.RRset(_name(rec.name), dns.rdataclass.IN, dns.rdatatype.from_text(rec.rtype))
            rrset.update_ttl(rec.ttl)
            by_key[(rec.name, rec.rtype)] = rrset
            section.append(rrset)
        rrset.add(_rdata(rec, rrset.rdtype))


def build_reply(query: dns.message.Message, answer: Answer, soa: Record, extra: list[Record] | None = None) -> dns.message.Message:
    """An authoritative reply; empty answers (NXDOMAIN or NODATA) carry the zone SOA."""
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AA | dns.flags.RA
    if answer.rcode == "NXDOMAIN":
        reply.set_rcode(dns.rcode.NXDOMAIN)
    add_records(reply.answer, answer.answers + (extra or []))
    add_records(reply.additional, answer.additional)
    if not answer.answers:
        add_records(reply.authority, [soa])
    return reply


def error_reply(query: dns.message.Message, rcode: int) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.RA
    reply.set_rcode(rcode)
    return reply


def max_size(query: dns.message.Message | None, tcp: bool) -> int:
    if tcp:
        return 65535
    if query is None or query.edns < 0:
        return UDP_LIMIT
    return max(UDP_LIMIT, min(int(query.payload), EDNS_CAP))


def to_wire(reply: dns.message.Message, limit: int) -> bytes:
    """Renders ``reply``; when it does not fit, sends the header and question with TC set so
    the client retries over TCP (RFC 2181 section 9)."""
    try:
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        reply.answer.clear()
        reply.authority.clear()
        reply.additional.clear()
        reply.flags |= dns.flags.TC
        return reply.to_wire(max_size=limit)


def formerr(data: bytes) -> bytes | None:
    """FORMERR for a message we could not parse, if it has at least a header to echo the id of."""
    if len(data) < 12:
        return None
    flags = 0x8000 | (data[2] & 0x78) << 8 | 0x0080 | dns.rcode.FORMERR  # QR, opcode, RA
    return data[:2] + flags.to_bytes(2, "big") + b"\x00" * 8


# -- upstream ---------------------------------------------------------------------------


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return True  # unparsable: do not use


def host_upstreams(path: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """Nameservers of the host; loopback stub resolvers (systemd-resolved, a local dnsmasq, or
    this server itself) are skipped so forwarding cannot loop; systemd-resolved's real list is
    used when the stub is all there is."""
    servers = parse_resolv_conf(_read(path))[0]
    usable = [s for s in servers if not _loopback(s)]
    if not usable and servers:
        fallback = Path("/run/systemd/resolve/resolv.conf")
        if fallback != path and fallback.exists():
            usable = [s for s in parse_resolv_conf(_read(fallback))[0] if not _loopback(s)]
    return [(s, 53) for s in usable]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) as the resolver reads them: the last search or
    domain line wins."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        fields = line.split()
        if len(fields) < 2:
            continue
        if fields[0] == "nameserver":
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = [s.rstrip(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options += fields[1:]
    return servers, searches, options


class Forwarder:
    """Sends a query to each upstream in turn (UDP, then TCP when truncated) until one answers."""

    def __init__(self, upstreams: list[tuple[str, int]], timeout: float = FORWARD_TIMEOUT) -> None:
        self.upstreams = upstreams
        self.timeout = timeout

    async def query(self, query: dns.message.Message, tcp: bool = False) -> dns.message.Message | None:
        import dns.asyncquery  # loads dnspython's DoH client (httpx): only once something is forwarded

        for ip, port in self.upstreams:
            try:
                if not tcp:
                    reply = await dns.asyncquery.udp(query, ip, timeout=self.timeout, port=port)
                    if not reply.flags & dns.flags.TC:
                        return reply
                return await dns.asyncquery.tcp(query, ip, timeout=self.timeout, port=port)
            except (OSError, EOFError, dns.exception.DNSException, asyncio.TimeoutError) as exc:
                log.debug("upstream %s:%s failed: %s", ip, port, exc)
        return None

    async def resolve(self, name: str, qtype: str) -> list[Record]:
        """Addresses of ``name`` from upstream (CNAME chasing for ExternalName targets)."""
        q = dns.message.make_query(name, qtype)
        reply = await self.query(q)
        if reply is None or reply.rcode() != dns.rcode.NOERROR:
            return []
        out: list[Record] = []
        for rrset in reply.answer:
            for rd in rrset:
                text = rd.to_text()
                if rrset.rdtype in (dns.rdatatype.CNAME,):
                    text = text.rstrip(".")
                out.append(Record(rrset.name.to_text().rstrip("."), dns.rdatatype.to_text(rrset.rdtype), text, rrset.ttl))
        return out

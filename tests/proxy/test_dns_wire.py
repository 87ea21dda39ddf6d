"""Wire helpers: upstream selection from resolv.conf, reply sizes, FORMERR for garbage."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.rcode

from sampan.proxy.dns_records import Answer, Record
from sampan.proxy.dns_wire import build_reply, formerr, host_upstreams, max_size, parse_resolv_conf, to_wire

SOA = Record("cluster.local", "SOA", ("ns.dns.cluster.local", "hostmaster.cluster.local", 7200, 1800, 86400, 5))


def test_parse_resolv_conf() -> None:
    text = "# c\nnameserver 192.0.2.1 ; x\ndomain a.example\nsearch b.example c.example. .\noptions ndots:2 edns0\nnameserver 192.0.2.2\n"
    assert parse_resolv_conf(text) == (["192.0.2.1", "192.0.2.2"], ["b.example", "c.example"], ["ndots:2", "edns0"])


def test_loopback_stub_resolvers_are_skipped(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.9\nnameserver bogus\n")
    assert host_upstreams(conf) == [("192.0.2.9", 53)]
    conf.write_text("nameserver 127.0.0.53\n")
    assert all(not ip.startswith("127.") for ip, _ in host_upstreams(conf))
    assert host_upstreams(tmp_path / "missing") == []


def test_udp_size_limits() -> None:
    plain = dns.message.make_query("a.example", "A")
    assert max_size(plain, False) == 512 and max_size(plain, True) == 65535
    assert max_size(dns.message.make_query("a.example", "A", use_edns=0, payload=1232), False) == 1232
    assert max_size(dns.message.make_query("a.example", "A", use_edns=0, payload=100), False) == 512


def test_too_big_reply_is_truncated() -> None:
    q = dns.message.make_query("big.default.svc.cluster.local", "A")
    answer = Answer(answers=[Record("big.default.svc.cluster.local", "A", f"198.18.2.{i}") for i in range(1, 80)])
    wire = to_wire(build_reply(q, answer, SOA), 512)
    reply = dns.message.from_wire(wire)
    assert len(wire) <= 512 and reply.flags & dns.flags.TC and reply.answer == []
    full = dns.message.from_wire(to_wire(build_reply(q, answer, SOA), 65535))
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 79


def test_formerr_echoes_id() -> None:
    assert formerr(b"\x00") is None
    reply = dns.message.from_wire(formerr(b"\xab\xcd" + b"\x01\x00" + b"\x00" * 8 + b"junk") or b"")
    assert reply.id == 0xABCD and reply.rcode() == dns.rcode.FORMERR

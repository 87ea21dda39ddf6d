"""Record building from the caches (no sockets)."""

from __future__ import annotations

from sampan.proxy.dns_records import TTL, ClusterRecords, Record, reverse_to_ip, undashed
from tests.proxy.dns_fixtures import caches, ep, eps, sample_objects, sample_records, svc


def values(answer: object) -> list[object]:
    return [r.value for r in answer.answers]  # type: ignore[attr-defined]


def test_cluster_ip_service_a_record() -> None:
    a = sample_records().lookup("web.default.svc.cluster.local.", "A")
    assert a.rcode == "NOERROR" and not a.forward
    assert a.answers == [Record("web.default.svc.cluster.local", "A", "198.19.0.20", TTL)]
    assert TTL == 5


def test_names_are_case_insensitive() -> None:
    assert values(sample_records().lookup("WEB.Default.SVC.cluster.LOCAL.", "A")) == ["198.19.0.20"]


def test_aaaa_for_v4_only_name_is_nodata() -> None:
    a = sample_records().lookup("web.default.svc.cluster.local.", "AAAA")
    assert a.rcode == "NOERROR" and a.answers == []


def test_unknown_names_in_zone_are_nxdomain() -> None:
    r = sample_records()
    for name in ("nope.default.svc.cluster.local.", "web.nons.svc.cluster.local.", "x.cluster.local.",
                 "a.b.web.default.svc.cluster.local.", "google.com.default.svc.cluster.local."):
        assert r.lookup(name, "A").rcode == "NXDOMAIN", name


def test_intermediate_names_exist() -> None:
    r = sample_records()
    for name in ("cluster.local.", "svc.cluster.local.", "default.svc.cluster.local.", "pod.cluster.local."):
        a = r.lookup(name, "A")
        assert a.rcode == "NOERROR" and a.answers == [], name
    assert r.lookup("cluster.local.", "SOA").answers[0].rtype == "SOA"


def test_headless_service_lists_ready_endpoints() -> None:
    assert values(sample_records().lookup("db.default.svc.cluster.local.", "A")) == ["198.18.0.7", "198.18.0.8"]


def test_headless_without_ready_endpoints_is_nxdomain() -> None:
    assert sample_records().lookup("empty.default.svc.cluster.local.", "A").rcode == "NXDOMAIN"


def test_endpoint_hostname_records() -> None:
    r = sample_records()
    assert values(r.lookup("db-1.db.default.svc.cluster.local.", "A")) == ["198.18.0.8"]
    assert r.lookup("db-2.db.default.svc.cluster.local.", "A").rcode == "NXDOMAIN"  # not ready
    assert r.lookup("db-0.web.default.svc.cluster.local.", "A").rcode == "NXDOMAIN"  # not headless


def test_endpoint_without_hostname_answers_dashed_ip() -> None:
    objs = [svc("h", cluster_ip="None"), eps("h", [ep("198.18.1.2")])]
    r = ClusterRecords(*caches(objs))
    assert values(r.lookup("198-18-1-2.h.default.svc.cluster.local.", "A")) == ["198.18.1.2"]


def test_srv_for_named_port_of_cluster_ip_service() -> None:
    a = sample_records().lookup("_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert a.answers == [Record("_http._tcp.web.default.svc.cluster.local", "SRV", (0, 100, 80, "web.default.svc.cluster.local"))]
    assert [(x.name, x.value) for x in a.additional] == [("web.default.svc.cluster.local", "198.19.0.20")]
    udp = sample_records().lookup("_dns._udp.web.default.svc.cluster.local.", "SRV")
    assert udp.answers[0].value == (0, 100, 53, "web.default.svc.cluster.local")
    assert sample_records().lookup("_http._udp.web.default.svc.cluster.local.", "SRV").rcode == "NXDOMAIN"


def test_srv_for_headless_service_targets_each_endpoint() -> None:
    a = sample_records().lookup("_pg._tcp.db.default.svc.cluster.local.", "SRV")
    assert [r.value for r in a.answers] == [
        (0, 50, 5432, "db-0.db.default.svc.cluster.local"),
        (0, 50, 5432, "db-1.db.default.svc.cluster.local"),
    ]
    assert {(x.name, x.value) for x in a.additional} == {
        ("db-0.db.default.svc.cluster.local", "198.18.0.7"),
        ("db-1.db.default.svc.cluster.local", "198.18.0.8"),
    }


def test_srv_on_service_name_lists_all_ports() -> None:
    a = sample_records().lookup("web.default.svc.cluster.local.", "SRV")
    assert sorted(r.value[2] for r in a.answers) == [53, 80]


def test_external_name_is_a_cname_chased_for_addresses() -> None:
    r = sample_records()
    a = r.lookup("ext.default.svc.cluster.local.", "A")
    assert a.answers == [Record("ext.default.svc.cluster.local", "CNAME", "example.com")]
    assert a.chase == "example.com"
    assert r.lookup("ext.default.svc.cluster.local.", "TXT").chase is None
    assert r.lookup("ext.default.svc.cluster.local.", "TXT").answers[0].rtype == "CNAME"


def test_pod_records_are_verified() -> None:
    r = sample_records()
    assert values(r.lookup("198-18-0-5.default.pod.cluster.local.", "A")) == ["198.18.0.5"]
    assert r.lookup("198-18-0-5.other.pod.cluster.local.", "A").rcode == "NXDOMAIN"
    assert r.lookup("198-18-0-99.default.pod.cluster.local.", "A").rcode == "NXDOMAIN"
    assert r.lookup("not-an-ip.default.pod.cluster.local.", "A").rcode == "NXDOMAIN"
    insecure = ClusterRecords(*caches(sample_objects()), pods_verified=False)
    assert values(insecure.lookup("198-18-0-99.default.pod.cluster.local.", "A")) == ["198.18.0.99"]


def test_ptr_records() -> None:
    r = sample_records()
    assert values(r.lookup("20.0.19.198.in-addr.arpa.", "PTR")) == ["web.default.svc.cluster.local"]
    assert values(r.lookup("7.0.18.198.in-addr.arpa.", "PTR")) == ["db-0.db.default.svc.cluster.local"]
    assert values(r.lookup("30.0.18.198.in-addr.arpa.", "PTR")) == ["198-18-0-30.other.pod.cluster.local"]
    # an endpoint of a ClusterIP service with no pod object known
    objs = [svc("s"), eps("s", [ep("198.18.3.3")])]
    assert values(ClusterRecords(*caches(objs)).lookup("3.3.18.198.in-addr.arpa.", "PTR")) == ["198-18-3-3.s.default.svc.cluster.local"]


def test_unknown_reverse_and_outside_names_forward() -> None:
    r = sample_records()
    assert r.lookup("1.1.168.192.in-addr.arpa.", "PTR").forward
    assert r.lookup("example.com.", "A").forward
    assert r.lookup("cluster.localx.", "A").forward


def test_name_helpers() -> None:
    assert reverse_to_ip("4.3.2.1.in-addr.arpa") == "1.2.3.4"
    assert reverse_to_ip("3.2.1.in-addr.arpa") is None
    assert reverse_to_ip("1.0." + "0." * 29 + "2.ip6.arpa") == "2000::1"
    assert undashed("10-0-0-1") == "10.0.0.1"
    assert undashed("fd00--1") == "fd00::1"
    assert undashed("web") is None

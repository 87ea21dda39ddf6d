"""A pod's resolv.conf for each dnsPolicy, with dnsConfig merged in (the kubelet's rules)."""

from __future__ import annotations

from typing import Any

from sampan.proxy.dns_resolvconf import pod_resolv_conf
from sampan.proxy.dns_wire import parse_resolv_conf

HOST = """# from the host
nameserver 192.0.2.53
nameserver 192.0.2.54
search corp.example lab.example.
options timeout:2 rotate
"""


def pod(ns: str = "team", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": ns}, "spec": {"containers": [{"name": "c"}], **spec}}


def test_cluster_first_default() -> None:
    assert pod_resolv_conf(pod(), "10.43.0.10", "cluster.local", HOST) == (
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.43.0.10\n"
        "options ndots:5\n"
    )


def test_unset_policy_is_cluster_first_and_domain_is_configurable() -> None:
    text = pod_resolv_conf(pod(ns="a"), "198.19.0.10", "example.internal", "")
    assert text.splitlines()[0] == "search a.svc.example.internal svc.example.internal example.internal"


def test_host_network_cluster_first_uses_host() -> None:
    text = pod_resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirst"), "10.43.0.10", "cluster.local", HOST)
    assert text == "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:2 rotate\n"


def test_cluster_first_with_host_net() -> None:
    text = pod_resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), "10.43.0.10", "cluster.local", HOST)
    assert "nameserver 10.43.0.10" in text and "options ndots:5" in text


def test_default_policy_uses_host() -> None:
    servers, searches, options = parse_resolv_conf(pod_resolv_conf(pod(dnsPolicy="Default"), "10.43.0.10", "cluster.local", HOST))
    assert servers == ["192.0.2.53", "192.0.2.54"] and searches == ["corp.example", "lab.example"]
    assert options == ["timeout:2", "rotate"]


def test_no_cluster_dns_falls_back_to_host() -> None:
    assert "nameserver 192.0.2.53" in pod_resolv_conf(pod(), None, "cluster.local", HOST)


def test_none_policy_with_dns_config() -> None:
    cfg = {"nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    text = pod_resolv_conf(pod(dnsPolicy="None", dnsConfig=cfg), "10.43.0.10", "cluster.local", HOST)
    # the example from the Kubernetes DNS documentation
    assert text == (
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\n"
        "nameserver 1.2.3.4\n"
        "options ndots:2 edns0\n"
    )


def test_none_policy_without_config_is_empty() -> None:
    assert pod_resolv_conf(pod(dnsPolicy="None"), "10.43.0.10", "cluster.local", HOST) == ""


def test_dns_config_merges_with_cluster_first() -> None:
    cfg = {"nameservers": ["10.43.0.10", "198.18.0.53"], "searches": ["cluster.local", "extra.example"],
           "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}]}
    servers, searches, options = parse_resolv_conf(pod_resolv_conf(pod(dnsConfig=cfg), "10.43.0.10", "cluster.local", ""))
    assert servers == ["10.43.0.10", "198.18.0.53"]  # duplicates dropped
    assert searches == ["team.svc.cluster.local", "svc.cluster.local", "cluster.local", "extra.example"]
    assert options == ["ndots:1", "single-request-reopen"]  # pod options override by name


def test_limits_on_nameservers_and_searches() -> None:
    cfg = {"nameservers": [f"198.18.0.{i}" for i in range(1, 6)], "searches": [f"s{i}.example" for i in range(40)]}
    servers, searches, _ = parse_resolv_conf(pod_resolv_conf(pod(dnsPolicy="None", dnsConfig=cfg), None, "cluster.local", ""))
    assert servers == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    assert len(searches) == 32 and searches[0] == "s0.example"

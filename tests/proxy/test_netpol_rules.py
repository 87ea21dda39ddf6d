"""NetworkPolicy semantics: each upstream rule checked through the plan's own decisions,
and the rendered ruleset checked by nft itself (in a throwaway netns) when available."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sampan.proxy.netpol_rules import build_plan, delete_transaction, policy_types, render, replace_transaction

NODE = "n1"


def pod(name: str, ip: str, ns: str = "default", labels: dict | None = None, node: str = NODE,
        ports: list[dict] | None = None, **extra: Any) -> dict:
    spec: dict = {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]}
    spec.update(extra)
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels or {}},
            "spec": spec, "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def ns(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def policy(name: str, spec: dict, namespace: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


WEB = pod("web", "198.18.0.10", labels={"app": "web"}, ports=[{"name": "http", "containerPort": 8080}])
CLIENT = pod("client", "198.18.0.11", labels={"role": "client"})
OTHER = pod("other", "198.18.0.12", labels={"role": "other"})
PROD_CLIENT = pod("pc", "198.18.0.20", ns="prod", labels={"role": "client"})
PROD_OTHER = pod("po", "198.18.0.21", ns="prod", labels={"role": "other"})
PODS = [WEB, CLIENT, OTHER, PROD_CLIENT, PROD_OTHER]
NAMESPACES = [ns("default"), ns("prod", env="prod")]
CLIENT_IP, WEB_IP, OTHER_IP = "198.18.0.11", "198.18.0.10", "198.18.0.12"


def plan_for(*policies: dict, pods: list[dict] | None = None):
    return build_plan(policies, pods if pods is not None else PODS, NAMESPACES, NODE)


def test_no_policy_allows_everything() -> None:
    plan = plan_for()
    assert plan.ingress == {} and plan.egress == {}
    assert plan.allows("198.18.0.11", "198.18.0.10")


def test_default_deny_ingress_isolates_only_selected_pods() -> None:
    plan = plan_for(policy("deny", {"podSelector": {"matchLabels": {"app": "web"}}}))
    assert not plan.allows(CLIENT_IP, WEB_IP)
    assert plan.allows(WEB_IP, CLIENT_IP)  # egress is not isolated
    assert plan.allows(CLIENT_IP, "198.18.0.12")  # unselected pod keeps accepting
    assert plan.allows(WEB_IP, WEB_IP)  # a pod never blocks itself
    assert "ingress_198.18.0.10" in render(plan, "t") and "egress_" not in render(plan, "t")


def test_policy_types_defaulting() -> None:
    assert policy_types(policy("p", {"podSelector": {}})) == ["Ingress"]
    assert policy_types(policy("p", {"podSelector": {}, "egress": [{}]})) == ["Ingress", "Egress"]
    assert policy_types(policy("p", {"podSelector": {}, "policyTypes": ["Egress"]})) == ["Egress"]


def test_empty_rule_allows_all_and_union_of_policies() -> None:
    deny = policy("deny", {"podSelector": {}})
    allow_all = policy("all", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]})
    plan = plan_for(deny, allow_all)
    assert plan.allows("198.18.0.20", WEB_IP)  # union: one allowing policy is enough
    assert not plan.allows(WEB_IP, CLIENT_IP)  # client still isolated by deny


def test_pod_selector_peer_is_same_namespace_only() -> None:
    p = policy("p", {"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    plan = plan_for(p)
    assert plan.allows(CLIENT_IP, WEB_IP)
    assert not plan.allows(OTHER_IP, WEB_IP)
    assert not plan.allows("198.18.0.20", WEB_IP)  # role=client but in prod


def test_namespace_selector_peer() -> None:
    p = policy("p", {"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}]}]})
    plan = plan_for(p)
    assert plan.allows("198.18.0.20", WEB_IP) and plan.allows("198.18.0.21", WEB_IP)
    assert not plan.allows(CLIENT_IP, WEB_IP)
    by_name = policy("q", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prod"}}}]}]})
    assert plan_for(by_name).allows("198.18.0.20", WEB_IP)


def test_and_versus_or_peers() -> None:
    both = {"namespaceSelector": {"matchLabels": {"env": "prod"}}, "podSelector": {"matchLabels": {"role": "client"}}}
    and_policy = policy("and", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [both]}]})
    plan = plan_for(and_policy)
    assert plan.allows("198.18.0.20", WEB_IP)
    assert not plan.allows("198.18.0.21", WEB_IP)  # prod but not client
    assert not plan.allows(CLIENT_IP, WEB_IP)  # client but not prod
    or_policy = policy("or", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"env": "prod"}}}, {"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    plan = plan_for(or_policy)
    assert plan.allows("198.18.0.20", WEB_IP) and plan.allows("198.18.0.21", WEB_IP)
    assert plan.allows(CLIENT_IP, WEB_IP)
    assert not plan.allows(OTHER_IP, WEB_IP)


def test_ip_block_with_except() -> None:
    p = policy("p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "198.18.0.0/24", "except": ["198.18.0.12/32", "198.18.0.128/25"]}}]}]})
    plan = plan_for(p)
    assert plan.allows(CLIENT_IP, WEB_IP)
    assert plan.allows("198.18.0.100", WEB_IP)
    assert not plan.allows(OTHER_IP, WEB_IP)
    assert not plan.allows("198.18.0.200", WEB_IP)
    assert not plan.allows("198.18.1.1", WEB_IP)
    text = render(plan, "t")
    assert "198.18.0.12" not in text.split("set ")[1].split("}")[0]  # the hole is cut out of the set


def test_numeric_named_ports_and_protocols() -> None:
    p = policy("p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [
        {"port": "http", "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}, {"port": "missing"}]}]})
    plan = plan_for(p)
    assert plan.allows(CLIENT_IP, WEB_IP, "tcp", 8080)  # named port from the pod's containerPorts
    assert not plan.allows(CLIENT_IP, WEB_IP, "tcp", 80)
    assert plan.allows(CLIENT_IP, WEB_IP, "udp", 53)
    assert not plan.allows(CLIENT_IP, WEB_IP, "tcp", 53)
    assert "meta l4proto tcp th dport 8080 return" in render(plan, "t")


def test_end_port_range_and_protocol_only() -> None:
    p = policy("p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [
        {"port": 32000, "endPort": 32768, "protocol": "TCP"}, {"protocol": "SCTP"}]}]})
    plan = plan_for(p)
    assert plan.allows(CLIENT_IP, WEB_IP, "tcp", 32000) and plan.allows(CLIENT_IP, WEB_IP, "tcp", 32768)
    assert not plan.allows(CLIENT_IP, WEB_IP, "tcp", 32769)
    assert plan.allows(CLIENT_IP, WEB_IP, "sctp", 9) and not plan.allows(CLIENT_IP, WEB_IP, "udp", 9)
    assert "th dport 32000-32768" in render(plan, "t")


def test_egress_rules_and_named_ports_resolve_per_destination() -> None:
    db1 = pod("db1", "198.18.0.30", labels={"app": "db"}, node="n2", ports=[{"name": "sql", "containerPort": 5432}])
    db2 = pod("db2", "198.18.0.31", labels={"app": "db"}, node="n2", ports=[{"name": "sql", "containerPort": 6432}])
    p = policy("p", {"podSelector": {"matchLabels": {"role": "client"}}, "egress": [
        {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": "sql", "protocol": "TCP"}]},
        {"to": [{"ipBlock": {"cidr": "198.19.0.0/16"}}]}]})
    plan = plan_for(p, pods=PODS + [db1, db2])
    assert policy_types(p) == ["Ingress", "Egress"]
    assert plan.allows(CLIENT_IP, "198.18.0.30", "tcp", 5432)
    assert plan.allows(CLIENT_IP, "198.18.0.31", "tcp", 6432)
    assert not plan.allows(CLIENT_IP, "198.18.0.31", "tcp", 5432)
    assert not plan.allows(CLIENT_IP, WEB_IP, "tcp", 8080)
    assert plan.allows(CLIENT_IP, "198.19.5.5", "udp", 53)
    assert not plan.allows(CLIENT_IP, "198.18.0.99")
    # Ingress isolation from the same policy (Ingress type, no rules): nothing comes in.
    assert not plan.allows(WEB_IP, CLIENT_IP)
    assert "ip daddr . th dport @eg_" in render(plan, "t")


def test_only_local_running_pod_network_pods_get_chains() -> None:
    remote = pod("remote", "198.18.1.5", labels={"app": "web"}, node="n2")
    host = pod("host", "198.18.0.50", labels={"app": "web"}, hostNetwork=True)
    done = pod("done", "198.18.0.51", labels={"app": "web"})
    done["status"]["phase"] = "Succeeded"
    plan = plan_for(policy("deny", {"podSelector": {}}), pods=[WEB, remote, host, done])
    assert list(plan.ingress) == [WEB_IP]


def test_empty_peer_list_member_names_nothing() -> None:
    p = policy("p", {"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "nobody"}}}]}]})
    plan = plan_for(p)
    assert not plan.allows(CLIENT_IP, WEB_IP)
    assert "return" in render(plan, "t") and "drop" in render(plan, "t")


def test_ipv6_pods() -> None:
    a = pod("a", "fd00::10", labels={"app": "web"})
    b = pod("b", "fd00::11", labels={"role": "client"})
    p = policy("p", {"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    plan = plan_for(p, pods=[a, b])
    assert plan.allows("fd00::11", "fd00::10") and not plan.allows("fd00::12", "fd00::10")
    assert "ip6 daddr vmap { fd00::10 : jump ingress_fd00__10 }" in render(plan, "t")


def _nft_check_available() -> bool:
    return os.geteuid() == 0 and shutil.which("nft") is not None and shutil.which("unshare") is not None


@pytest.mark.skipif(not _nft_check_available(), reason="needs root, nft and unshare")
def test_rendered_ruleset_is_accepted_by_nft(tmp_path: Path) -> None:
    db = pod("db", "198.18.0.30", labels={"app": "db"}, ports=[{"name": "sql", "containerPort": 5432}])
    v6 = pod("v6", "fd00::10", labels={"app": "web"}, ports=[{"name": "http", "containerPort": 80}])
    policies = [
        policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
            {"ipBlock": {"cidr": "198.18.0.0/16", "except": ["198.18.0.12/32"]}},
            {"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "client"}}}],
            "ports": [{"port": "http"}, {"port": 9000, "endPort": 9100, "protocol": "UDP"}, {"protocol": "SCTP"}]}],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": "sql"}]}]}),
    ]
    plan = build_plan(policies, PODS + [db, v6], NAMESPACES, NODE)
    # Apply for real inside a private network namespace: replace twice (as successive syncs do), list, delete.
    script = tmp_path / "replace.nft"
    script.write_text(replace_transaction(plan, "sampan-test-check"))
    (tmp_path / "delete.nft").write_text(delete_transaction("sampan-test-check"))
    shell = (f"nft -f {script} && nft -f {script} && nft list table inet sampan-test-check"
             f" && nft -f {tmp_path / 'delete.nft'} && ! nft list table inet sampan-test-check 2>/dev/null")
    result = subprocess.run(["unshare", "-n", "sh", "-c", shell], capture_output=True)
    assert result.returncode == 0, result.stderr.decode() + "\n" + script.read_text()
    listed = result.stdout.decode()
    assert "chain ingress_198.18.0.10" in listed and "chain egress_198.18.0.30" in listed
    assert "198.18.0.30 . 5432" in listed

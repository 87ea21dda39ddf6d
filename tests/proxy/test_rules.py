"""The ruleset generator: one golden feature per behaviour (pure; no root needed)."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from sampan.proxy.rules import NodeInfo, build_ruleset, service_ports
from tests.proxy.netns import available

NODE = NodeInfo("n1", ("198.18.0.1",), "198.18.0.0/16", "198.19.0.0/16")
T = "sampan-test-rules"


def svc(name: str, ip: str = "198.19.0.10", **spec: object) -> dict:
    base = {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    return {"metadata": {"namespace": "default", "name": name}, "spec": {**base, **spec}}


def ep(ip: str, node: str = "n1", ready: bool = True, serving: bool | None = None, terminating: bool = False) -> dict:
    cond: dict = {"ready": ready, "terminating": terminating}
    if serving is not None:
        cond["serving"] = serving
    return {"addresses": [ip], "nodeName": node, "conditions": cond}


def eps(name: str, *endpoints: dict, port: int = 8080) -> dict:
    return {
        "metadata": {"namespace": "default", "name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def build(services: list[dict], slices: list[dict], node: NodeInfo = NODE) -> str:
    return build_ruleset(T, services, slices, node)


def chain(text: str, prefix: str) -> str:
    """Body of the first chain whose name starts with ``prefix``."""
    hashed = r"[A-Z2-7]{8}-[^ ]*" if prefix.endswith("-") else ""
    m = re.search(r"\tchain (" + re.escape(prefix) + hashed + r") \{\n(.*?)\n\t\}", text, re.S)
    assert m, f"no chain {prefix}"
    return m.group(2)


def test_atomic_replace_header() -> None:
    text = build([], [])
    assert text.startswith(f"table ip {T} {{\n}}\ndelete table ip {T}\n")
    assert "type nat hook prerouting priority -100" in text
    assert "type nat hook output priority -100" in text
    assert "type nat hook postrouting priority 100" in text
    assert "ip daddr 198.19.0.0/16 reject" in text  # unallocated service addresses never leave
    assert "masquerade fully-random" in text and "meta mark & 0x4000 == 0 return" in text


def test_cluster_ip_random_balancing_and_dnat() -> None:
    text = build([svc("web")], [eps("web", ep("198.18.0.2"), ep("198.18.0.3"), ep("198.18.0.4"))])
    assert re.search(r"198\.19\.0\.10 \. tcp \. 80 : goto service-\w{8}-default/web/tcp/http", text)
    body = chain(text, "service-")
    assert "ip saddr != 198.18.0.0/16 jump mark-for-masquerade" in body  # cluster-CIDR masquerade
    assert ("meta l4proto tcp dnat ip addr . port to numgen random mod 3 map "
            "{ 0 : 198.18.0.2 . 8080, 1 : 198.18.0.3 . 8080, 2 : 198.18.0.4 . 8080 }") in body
    # Hairpin: a pod reaching itself through the service is masqueraded.
    assert "198.18.0.2 . 198.18.0.2, 198.18.0.3 . 198.18.0.3, 198.18.0.4 . 198.18.0.4" in text
    assert "ct status dnat ip saddr . ip daddr @hairpin-endpoints masquerade" in chain(text, "nat-postrouting")
    assert "elements = { 198.19.0.10 }" in text  # cluster-ips set


def test_headless_and_external_name_get_no_rules() -> None:
    headless = svc("h", ip="None")
    ext = {"metadata": {"namespace": "default", "name": "e"}, "spec": {"type": "ExternalName", "externalName": "x.example"}}
    assert service_ports([headless, ext], []) == []
    assert "goto service-" not in build([headless, ext], [eps("h", ep("198.18.0.2"))])


def test_no_endpoints_rejects() -> None:
    text = build([svc("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])], [])
    assert "198.19.0.10 . tcp . 80 : goto reject-chain" in text
    assert "tcp . 30080 : goto reject-chain" in text
    assert "meta l4proto tcp reject with tcp reset" in chain(text, "reject-chain")
    assert "goto service-" not in text


def test_terminating_endpoints_only_when_no_ready_ones() -> None:
    slices = [eps("web", ep("198.18.0.2", ready=False, serving=True, terminating=True),
                  ep("198.18.0.3", ready=False, serving=False, terminating=True))]
    text = build([svc("web")], slices)
    assert "dnat to 198.18.0.2:8080" in text and "198.18.0.3" not in text
    slices[0]["endpoints"].append(ep("198.18.0.4"))
    text = build([svc("web")], slices)
    assert "dnat to 198.18.0.4:8080" in text and "198.18.0.2" not in text


def test_nodeport_on_node_addresses_and_localhost() -> None:
    text = build([svc("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])],
                 [eps("web", ep("198.18.0.2"))])
    assert "set nodeport-ips { type ipv4_addr; elements = { 127.0.0.1, 198.18.0.1 } }" in text
    assert re.search(r"tcp \. 30080 : goto external-\w{8}-default/web/tcp/http", text)
    body = chain(text, "external-")
    assert body.split("\n")[0].strip() == "jump mark-for-masquerade"
    assert "goto service-" in body


def test_session_affinity_uses_timeout_sets() -> None:
    text = build([svc("web", sessionAffinity="ClientIP",
                      sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                 [eps("web", ep("198.18.0.2"), ep("198.18.0.3"))])
    assert text.count("flags dynamic,timeout; timeout 60s;") == 2
    body = chain(text, "service-")
    assert re.search(r"ip saddr @affinity-\S+ goto endpoint-", body)
    assert body.index("@affinity-") < body.index("numgen")  # stickiness before random choice
    assert re.search(r"update @affinity-\S+ \{ ip saddr \}", text)
    assert "numgen random mod 2 vmap { 0 : goto endpoint-" in body
    assert "dnat to 198.18.0.2:8080" in chain(text, "endpoint-")


def test_external_traffic_policy_local() -> None:
    spec = dict(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=32000,
                ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    s = svc("web", **spec)
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}
    text = build([s], [eps("web", ep("198.18.0.2", node="n1"), ep("198.18.0.3", node="n2"))])
    assert re.search(r"198\.18\.0\.1 \. tcp \. 80 : goto external-", text)  # LB address accepted
    ext = chain(text, "external-")
    assert "ip saddr 198.18.0.0/16 goto service-" in ext  # pods short-circuit to all endpoints
    assert "fib saddr type local jump mark-for-masquerade" in ext
    local = chain(text, "local-")
    assert "198.18.0.2" in local and "198.18.0.3" not in local
    # No local endpoint: outside traffic is dropped, cluster traffic still served.
    text = build([s], [eps("web", ep("198.18.0.3", node="n2"))])
    assert chain(text, "local-").strip() == "drop"
    assert "198.19.0.10 . tcp . 80 : goto service-" in text
    assert service_ports([s], [])[0].health_check_node_port == 32000


def test_internal_traffic_policy_local() -> None:
    s = svc("web", internalTrafficPolicy="Local")
    text = build([s], [eps("web", ep("198.18.0.2", node="n1"), ep("198.18.0.3", node="n2"))])
    assert "198.18.0.2" in chain(text, "service-") or "198.18.0.2" in text
    assert "dnat to 198.18.0.3" not in text
    text = build([s], [eps("web", ep("198.18.0.3", node="n2"))])
    assert "198.19.0.10 . tcp . 80 : drop" in text


def test_port_matching_by_name_and_dedup() -> None:
    s = svc("web", ports=[{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}])
    sl1 = eps("web", ep("198.18.0.2"))
    sl2 = eps("web", ep("198.18.0.2"))  # duplicate address in a second slice
    ports = service_ports([s], [sl1, sl2])
    assert [(p.port_name, len(p.endpoints)) for p in ports] == [("http", 1), ("metrics", 0)]
    text = build([s], [sl1, sl2])
    assert "198.19.0.10 . tcp . 9090 : goto reject-chain" in text


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_kernel_accepts_ruleset() -> None:
    """nft parses and loads the generated ruleset (inside a throwaway netns)."""
    ns = f"spxrules-{uuid.uuid4().hex[:6]}"
    s = svc("web", type="LoadBalancer", externalTrafficPolicy="Local", sessionAffinity="ClientIP",
            ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}
    text = build([s, svc("empty", ip="198.19.0.11")], [eps("web", ep("198.18.0.2"), ep("198.18.0.3", node="n2"))])
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for _ in range(2):  # the second load replaces the first atomically
            r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, capture_output=True)
            assert r.returncode == 0, r.stderr
        listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", T],
                                capture_output=True, text=True, check=True).stdout
        assert "numgen random mod" in listed or "goto endpoint-" in listed
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_two_load_balancers_on_one_address_and_port() -> None:
    """ServiceLB gives every LB service the node address: the older service keeps the port."""
    older, newer = (svc(n, ip=ip, type="LoadBalancer", ports=[{"name": "http", "port": 80, "nodePort": np}])
                    for n, ip, np in (("a", "198.19.0.10", 30080), ("b", "198.19.0.11", 30081)))
    older["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    newer["metadata"]["creationTimestamp"] = "2026-01-02T00:00:00Z"
    for s in (older, newer):
        s["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}
    text = build([newer, older], [eps("a", ep("198.18.0.2")), eps("b", ep("198.18.0.3"))])
    assert text.count("198.18.0.1 . tcp . 80 :") == 1
    assert re.search(r"198\.18\.0\.1 \. tcp \. 80 : goto external-\w{8}-default/a/", text)


def _ruleset(services: list[dict], slices: list[dict]):
    from sampan.proxy.rules import render_ruleset
    return render_ruleset(T, service_ports(services, slices), NODE)


def test_partial_sync_commands() -> None:
    from sampan.proxy.ruleset import diff_text
    web = svc("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    old = _ruleset([web, svc("gone", ip="198.19.0.12")], [eps("web", ep("198.18.0.2")), eps("gone", ep("198.18.0.9"))])
    assert diff_text(old, old) == ""
    new = _ruleset([web, svc("sticky", ip="198.19.0.11", sessionAffinity="ClientIP")],
                   [eps("web", ep("198.18.0.2"), ep("198.18.0.3")), eps("sticky", ep("198.18.0.4"))])
    text = diff_text(old, new)
    assert text is not None
    lines = text.splitlines()
    assert any(line.startswith(f"add set ip {T} affinity-") for line in lines)
    assert any(re.match(rf"flush chain ip {T} service-\w{{8}}-default/web/", line) for line in lines)
    assert any(re.match(rf"delete chain ip {T} service-\w{{8}}-default/gone/", line) for line in lines)
    assert f"delete element ip {T} service-ips {{ 198.19.0.12 . tcp . 80 }}" in lines
    # Chains are only deleted after the map elements that jump to them.
    assert max(i for i, line in enumerate(lines) if "delete element" in line) < min(
        i for i, line in enumerate(lines) if line.startswith("delete chain"))


def _normalized(ns: str) -> dict:
    import json
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", T],
                         capture_output=True, text=True, check=True).stdout
    result: dict = {}
    for item in json.loads(out)["nftables"]:
        for kind, body in item.items():
            if kind in ("set", "map"):
                result[(kind, body["name"])] = sorted(json.dumps(e, sort_keys=True) for e in body.get("elem", []))
            elif kind == "rule":
                result.setdefault(("rule", body["chain"]), []).append(json.dumps(body["expr"], sort_keys=True))
            elif kind == "chain":
                result[("chain", body["name"])] = body.get("hook")
    return result


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_partial_sync_equals_full_replace_in_kernel() -> None:
    from sampan.proxy.ruleset import diff_text, full_text
    web = svc("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    old = _ruleset([web, svc("gone", ip="198.19.0.12", sessionAffinity="ClientIP")],
                   [eps("web", ep("198.18.0.2")), eps("gone", ep("198.18.0.9"), ep("198.18.0.8"))])
    new = _ruleset([web, svc("sticky", ip="198.19.0.11", sessionAffinity="ClientIP"), svc("empty", ip="198.19.0.13")],
                   [eps("web", ep("198.18.0.2"), ep("198.18.0.3")), eps("sticky", ep("198.18.0.4"))])
    ns = f"spxdiff-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        def load(text: str) -> None:
            r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, capture_output=True)
            assert r.returncode == 0, r.stderr + text
        load(full_text(old))
        load(diff_text(old, new) or "")
        partial = _normalized(ns)
        load(full_text(new))
        assert partial == _normalized(ns)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_ports_cache_rereads_only_changed_services() -> None:
    from sampan.proxy.rules import PortsCache
    a, b = svc("a", ip="198.19.0.10"), svc("b", ip="198.19.0.11")
    sa, sb = eps("a", ep("198.18.0.2")), eps("b", ep("198.18.0.3"))
    for i, obj in enumerate((a, b, sa, sb)):
        obj["metadata"]["resourceVersion"] = str(i + 1)
    cache = PortsCache()
    first = cache.ports([a, b], [sa, sb])
    sb = {**sb, "metadata": {**sb["metadata"], "resourceVersion": "9"}, "endpoints": [ep("198.18.0.4")]}
    second = cache.ports([a, b], [sa, sb])
    assert second[0] is first[0]  # "a" unchanged: reused
    assert [e.ip for e in second[1].endpoints] == ["198.18.0.4"]
    assert cache.ports([a], [sa]) == [first[0]]  # deleted services drop out


def test_cached_render_matches_fresh_render() -> None:
    """Re-rendering through PortsCache reuses unchanged services' rules; the result must equal
    a render from scratch, also for affinity, Local policies and another node."""
    from sampan.proxy.rules import PortsCache, render_ruleset
    from sampan.proxy.ruleset import full_text
    services = [
        svc("a", ip="198.19.0.10", type="NodePort", externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
        svc("b", ip="198.19.0.11", sessionAffinity="ClientIP"),
        svc("c", ip="198.19.0.12", internalTrafficPolicy="Local"),
    ]
    slices = [eps("a", ep("198.18.0.2"), ep("198.18.0.3", node="n2")),
              eps("b", ep("198.18.0.4"), ep("198.18.0.5")), eps("c", ep("198.18.0.6", node="n2"))]
    for i, obj in enumerate(services + slices):
        obj["metadata"]["resourceVersion"] = str(i + 1)
    cache = PortsCache()
    first = render_ruleset(T, cache.ports(services, slices), NODE)
    assert full_text(first) == build(services, slices)
    slices[1] = {**slices[1], "metadata": {**slices[1]["metadata"], "resourceVersion": "99"},
                 "endpoints": [ep("198.18.0.7")]}
    again = render_ruleset(T, cache.ports(services, slices), NODE)
    assert again.chains != first.chains
    assert full_text(again) == build(services, slices)
    other = NodeInfo("n2", ("198.18.0.9",), "198.18.0.0/16", "198.19.0.0/16")
    assert full_text(render_ruleset(T, cache.ports(services, slices), other)) == build(services, slices, other)


@pytest.mark.parametrize("value, ok", [
    ("198.18.0.1", True), ("0.0.0.0", True), ("198.18.0.01", False), ("256.1.1.1", False),
    ("1.2.3", False), ("::1", False), (" 1.2.3.4", False), ("1.2.3.4\0", False), (None, False), ("", False),
])
def test_ipv4_check(value: object, ok: bool) -> None:
    from sampan.proxy.rules import _is_ipv4
    assert _is_ipv4(value) is ok

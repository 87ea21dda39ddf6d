"""Services + EndpointSlices + node facts -> one nftables ruleset (pure, no I/O).

The layout follows kube-proxy's nftables mode: verdict maps keyed by
``daddr . l4proto . dport`` jump to a chain per service port, which picks an
endpoint chain with ``numgen random`` and DNATs there. Traffic that must be
masqueraded is marked and the mark is turned into ``masquerade`` in postrouting.
Services without usable endpoints are rejected in filter hooks, and addresses of
the service CIDR that nothing DNATed are rejected so they never leave the node.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sampan.proxy.ruleset import NamedSet, Ruleset, full_text

Obj = dict[str, Any]

MASQ_MARK = "0x4000"
AFFINITY_DEFAULT_TIMEOUT = 10800
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Our LoadBalancer class; Services naming another class are left to their controller.
LB_CLASS = "sampan.io/servicelb"


@dataclass(frozen=True)
class NodeInfo:
    name: str
    addresses: tuple[str, ...]  # node IPs that accept NodePort traffic (127.0.0.1 is added)
    cluster_cidr: str
    service_cidr: str
    localhost_nodeports: bool = True


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node: str | None
    ready: bool
    serving: bool
    terminating: bool


@dataclass
class ServicePort:
    """One (service, port) as the proxy sees it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp | udp | sctp
    port: int
    cluster_ip: str
    node_port: int = 0
    lb_ips: list[str] = field(default_factory=list)
    external_ips: list[str] = field(default_factory=list)
    external_local: bool = False
    internal_local: bool = False
    affinity_timeout: int = 0  # 0 = no ClientIP affinity
    health_check_node_port: int = 0
    endpoints: list[Endpoint] = field(default_factory=list)
    # (node, rendered fragment): ServicePorts are not changed once built, and PortsCache hands
    # the same object back while the service is unchanged, so a sync re-renders only changes.
    rendered: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def base(self) -> str:
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or self.port}"

    def chain(self, prefix: str, suffix: str = "") -> str:
        return _chain_name(prefix, self.base + suffix)

    @property
    def service_chain(self) -> str:
        return self.chain("service")

    @property
    def external_chain(self) -> str:
        return self.chain("external")

    @property
    def local_chain(self) -> str:
        return self.chain("local")

    def endpoint_chain(self, ep: Endpoint) -> str:
        return self.chain("endpoint", f"__{ep.ip}/{ep.port}")

    def affinity_set(self, ep: Endpoint) -> str:
        return self.chain("affinity", f"__{ep.ip}/{ep.port}")

    @property
    def has_external(self) -> bool:
        return bool(self.node_port or self.lb_ips or self.external_ips)


@functools.lru_cache(maxsize=1 << 16)
def _chain_name(prefix: str, text: str) -> str:
    # Hashing is most of a re-render's cost at thousands of services; names never change.
    digest = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]
    return f"{prefix}-{digest}-{text}"


def usable(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Ready endpoints; when there are none, the serving ones that are terminating."""
    eps = list(endpoints)
    ready = [ep for ep in eps if ep.ready]
    if ready:
        return ready
    return [ep for ep in eps if ep.serving and ep.terminating]


def cluster_endpoints(sp: ServicePort, node: str) -> list[Endpoint]:
    if sp.internal_local:
        return usable(ep for ep in sp.endpoints if ep.node == node)
    return usable(sp.endpoints)


def local_endpoints(sp: ServicePort, node: str) -> list[Endpoint]:
    return usable(ep for ep in sp.endpoints if ep.node == node)


# -- objects -> ServicePorts ----------------------------------------------------


def _is_ipv4(ip: Any) -> bool:
    # inet_pton accepts exactly what ipaddress does for IPv4 (dotted quad, no leading zeros)
    # at a tenth of the cost, which matters with a hundred thousand endpoint addresses.
    if not isinstance(ip, str):
        return False
    try:
        socket.inet_pton(socket.AF_INET, ip)
    except (OSError, ValueError):
        return False
    return True


def _slices_by_service(slices: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        svc_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc_name and sl.get("addressType") == "IPv4":
            by_service.setdefault((meta.get("namespace", ""), svc_name), []).append(sl)
    return by_service


def _oldest_first(services: Iterable[Obj]) -> list[Obj]:
    # Oldest first, so when two services claim one address and port the older keeps it.
    return sorted(services, key=lambda s: (
        str((s.get("metadata") or {}).get("creationTimestamp") or ""),
        (s.get("metadata") or {}).get("namespace", ""), (s.get("metadata") or {}).get("name", "")))


def service_ports(services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServicePort]:
    """Every proxied (service, port) with its endpoints; headless and ExternalName yield none."""
    by_service = _slices_by_service(slices)
    result: list[ServicePort] = []
    for svc in _oldest_first(services):
        meta = svc.get("metadata") or {}
        result += ports_of(svc, by_service.get((meta.get("namespace", ""), meta.get("name", "")), []))
    return result


class PortsCache:
    """``service_ports`` that re-reads only services whose object or slices changed
    (by resourceVersion); most syncs touch a handful of services out of thousands."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[tuple[Any, ...], list[ServicePort]]] = {}

    def ports(self, services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServicePort]:
        by_service = _slices_by_service(slices)
        fresh: dict[tuple[str, str], tuple[tuple[Any, ...], list[ServicePort]]] = {}
        result: list[ServicePort] = []
        for svc in _oldest_first(services):
            meta = svc.get("metadata") or {}
            key = (meta.get("namespace", ""), meta.get("name", ""))
            own = by_service.get(key, [])
            versions = [meta.get("resourceVersion")] + [(s.get("metadata") or {}).get("resourceVersion") for s in own]
            stamp = (str(meta.get("uid")), *sorted(str(v) for v in versions))
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp and all(versions):
                ports = hit[1]
            else:
                ports = ports_of(svc, own)
            fresh[key] = (stamp, ports)
            result += ports
        self._cache = fresh
        return result


def ports_of(svc: Obj, slices: list[Obj]) -> list[ServicePort]:
    """The proxied ports of one service with their endpoints from its slices."""
    result: list[ServicePort] = []
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ip = spec.get("clusterIP")
    if spec.get("type") == "ExternalName" or not _is_ipv4(ip):
        return result
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    svc_type = spec.get("type", "ClusterIP")
    lb_ips: list[str] = []
    if svc_type == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb_ips = [i["ip"] for i in ingress if _is_ipv4(i.get("ip"))]
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or AFFINITY_DEFAULT_TIMEOUT)
    for port in spec.get("ports") or []:
        proto = str(port.get("protocol") or "TCP").lower()
        sp = ServicePort(
            namespace=ns,
            name=name,
            port_name=port.get("name") or "",
            protocol=proto,
            port=int(port["port"]),
            cluster_ip=ip,
            node_port=int(port.get("nodePort") or 0) if svc_type in ("NodePort", "LoadBalancer") else 0,
            lb_ips=list(lb_ips),
            external_ips=[e for e in spec.get("externalIPs") or [] if _is_ipv4(e)],
            external_local=spec.get("externalTrafficPolicy") == "Local" and svc_type in ("NodePort", "LoadBalancer"),
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            affinity_timeout=affinity,
            health_check_node_port=int(spec.get("healthCheckNodePort") or 0),
        )
        sp.endpoints = _endpoints_for(sp, slices)
        result.append(sp)
    return result


def _endpoints_for(sp: ServicePort, slices: list[Obj]) -> list[Endpoint]:
    seen: dict[str, Endpoint] = {}
    for sl in slices:
        target = None
        for p in sl.get("ports") or []:
            if (p.get("name") or "") == sp.port_name and str(p.get("protocol") or "TCP").lower() == sp.protocol:
                target = p.get("port")
        if not target:
            continue
        for ep in sl.get("endpoints") or []:
            addrs = [a for a in ep.get("addresses") or [] if _is_ipv4(a)]
            if not addrs or addrs[0] in seen:
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready") is not False  # unset means ready
            seen[addrs[0]] = Endpoint(
                ip=addrs[0],
                port=int(target),
                node=ep.get("nodeName"),
                ready=ready,
                serving=cond.get("serving", ready) is not False,
                terminating=bool(cond.get("terminating", False)),
            )
    return sorted(seen.values(), key=lambda e: (e.ip, e.port))


# -- ServicePorts -> ruleset text ------------------------------------------------


def _first_per_key(items: list[str]) -> list[str]:
    """Map elements with each key once (two services claiming one LB address and port: the
    first keeps it), since a duplicate key would fail the whole transaction."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.rsplit(" : ", 1)[0]
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _dnat(proto: str, eps: list[Endpoint]) -> str:
    """DNAT to one endpoint chosen at random (an anonymous map: no chain per endpoint)."""
    if len(eps) == 1:
        return f"meta l4proto {proto} dnat to {eps[0].ip}:{eps[0].port}"
    arms = ", ".join(f"{i} : {ep.ip} . {ep.port}" for i, ep in enumerate(eps))
    return f"meta l4proto {proto} dnat ip addr . port to numgen random mod {len(eps)} map {{ {arms} }}"


def _pick(chains: list[str]) -> str:
    if len(chains) == 1:
        return f"goto {chains[0]}"
    arms = ", ".join(f"{i} : goto {c}" for i, c in enumerate(chains))
    return f"numgen random mod {len(chains)} vmap {{ {arms} }}"


@dataclass
class _Fragment:
    """What one ServicePort adds to the ruleset, in the order the full render adds it."""

    service_ips: list[str] = field(default_factory=list)
    no_ep_services: list[str] = field(default_factory=list)
    nodeports: list[str] = field(default_factory=list)
    no_ep_nodeports: list[str] = field(default_factory=list)
    hairpin: list[str] = field(default_factory=list)
    # Per-endpoint (affinity) chains and their sets: the first port to claim a name keeps it.
    endpoint_chains: list[tuple[str, str, tuple[str, list[str]]]] = field(default_factory=list)
    chains: list[tuple[str, tuple[str, list[str]]]] = field(default_factory=list)


def _render_port(sp: ServicePort, node: NodeInfo) -> _Fragment:
    if sp.rendered is not None and sp.rendered[0] == node:
        return sp.rendered[1]  # type: ignore[no-any-return]
    cidr = node.cluster_cidr
    f = _Fragment()
    key = f"{sp.protocol} . {sp.port}"
    all_usable = usable(sp.endpoints)
    c_eps = cluster_endpoints(sp, node.name)
    e_eps = local_endpoints(sp, node.name) if sp.external_local else c_eps
    external_dests = [f"{ip} . {key}" for ip in sp.lb_ips + sp.external_ips]

    # Cluster IP.
    if c_eps:
        f.service_ips.append(f"{sp.cluster_ip} . {key} : goto {sp.service_chain}")
    else:
        verdict = "drop" if sp.internal_local and all_usable else "goto reject-chain"
        f.no_ep_services.append(f"{sp.cluster_ip} . {key} : {verdict}")
    # NodePort / LoadBalancer / externalIPs.
    if sp.has_external:
        if all_usable:
            for dest in external_dests:
                f.service_ips.append(f"{dest} : goto {sp.external_chain}")
            if sp.node_port:
                f.nodeports.append(f"{sp.protocol} . {sp.node_port} : goto {sp.external_chain}")
        else:
            for dest in external_dests:
                f.no_ep_services.append(f"{dest} : goto reject-chain")
            if sp.node_port:
                f.no_ep_nodeports.append(f"{sp.protocol} . {sp.node_port} : goto reject-chain")

    wanted = {id(ep): ep for ep in c_eps + (e_eps if all_usable and sp.has_external else [])}
    f.hairpin = [ep.ip for ep in wanted.values()]
    if sp.affinity_timeout:
        # Per-endpoint chains only where a client must be remembered per endpoint.
        for ep in wanted.values():
            aff = sp.affinity_set(ep)
            f.endpoint_chains.append((sp.endpoint_chain(ep), aff, (
                "", [f"update @{aff} {{ ip saddr }}", _dnat(sp.protocol, [ep])])))

    def pick_rules(eps: list[Endpoint]) -> list[str]:
        if not sp.affinity_timeout:
            return [_dnat(sp.protocol, eps)]
        rules = [f"ip saddr @{sp.affinity_set(ep)} goto {sp.endpoint_chain(ep)}" for ep in eps]
        rules.append(_pick([sp.endpoint_chain(ep) for ep in eps]))
        return rules

    if c_eps:
        # Traffic from outside the cluster CIDR (the node itself, other hosts) is masqueraded.
        f.chains.append((sp.service_chain, ("", [f"ip saddr != {cidr} jump mark-for-masquerade", *pick_rules(c_eps)])))
    if sp.has_external and all_usable:
        if not sp.external_local:
            ext = ["jump mark-for-masquerade", f"goto {sp.service_chain}" if c_eps else "drop"]
        else:
            # Pods and the node itself may use any endpoint; outside clients keep their
            # source address and only reach endpoints on this node.
            ext = []
            if c_eps:
                ext += [
                    f"ip saddr {cidr} goto {sp.service_chain}",
                    "fib saddr type local jump mark-for-masquerade",
                    f"fib saddr type local goto {sp.service_chain}",
                ]
            ext.append(f"goto {sp.local_chain}")
            f.chains.append((sp.local_chain, ("", pick_rules(e_eps) if e_eps else ["drop"])))
        f.chains.append((sp.external_chain, ("", ext)))
    sp.rendered = (node, f)
    return f


def render_ruleset(table: str, ports: list[ServicePort], node: NodeInfo) -> Ruleset:
    nodeport_ips = sorted(set(node.addresses) | ({"127.0.0.1"} if node.localhost_nodeports else set()))
    cluster_ips: set[str] = set()
    service_ips: list[str] = []
    nodeports: list[str] = []
    no_ep_services: list[str] = []
    no_ep_nodeports: list[str] = []
    rs = Ruleset("ip", table)
    chains: dict[str, tuple[str, list[str]]] = {}
    used_chains: set[str] = set()
    hairpin: set[str] = set()

    for sp in ports:
        cluster_ips.add(sp.cluster_ip)
        f = _render_port(sp, node)
        service_ips += f.service_ips
        no_ep_services += f.no_ep_services
        nodeports += f.nodeports
        no_ep_nodeports += f.no_ep_nodeports
        hairpin.update(f.hairpin)
        for name, aff, chain in f.endpoint_chains:
            if name in used_chains:
                continue
            used_chains.add(name)
            rs.sets[aff] = NamedSet("set", f"type ipv4_addr; flags dynamic,timeout; timeout {sp.affinity_timeout}s;")
            chains[name] = chain
        chains.update(f.chains)

    sets = {
        "cluster-ips": NamedSet("set", "type ipv4_addr;", sorted(cluster_ips)),
        "nodeport-ips": NamedSet("set", "type ipv4_addr;", nodeport_ips),
        "hairpin-endpoints": NamedSet("set", "type ipv4_addr . ipv4_addr;", [f"{ip} . {ip}" for ip in sorted(hairpin)]),
    }
    for name, keytype, items in (
        ("service-ips", "ipv4_addr . inet_proto . inet_service", service_ips),
        ("service-nodeports", "inet_proto . inet_service", nodeports),
        ("no-endpoint-services", "ipv4_addr . inet_proto . inet_service", no_ep_services),
        ("no-endpoint-nodeports", "inet_proto . inet_service", no_ep_nodeports),
    ):
        sets[name] = NamedSet("map", f"type {keytype} : verdict;", _first_per_key(items))
    rs.sets = {**sets, **rs.sets}
    rs.chains = {**_base_chains(node.service_cidr), **chains}
    return rs


def render(table: str, ports: list[ServicePort], node: NodeInfo) -> str:
    """The whole ``nft -f`` transaction: create-if-missing, delete, redefine (atomic replace)."""
    return full_text(render_ruleset(table, ports, node))


def _entry(name: str, rules: list[str], hook: str = "") -> tuple[str, tuple[str, list[str]]]:
    return name, (hook, rules)


def _base_chains(service_cidr: str) -> dict[str, tuple[str, list[str]]]:
    nat = "policy accept;"
    return dict(
        [
            _entry("filter-input", [
                "ct state new jump nodeport-endpoints-check",
                "ct state new jump service-endpoints-check",
                "ct state new jump cluster-ips-check",
            ], f"type filter hook input priority -110; {nat}"),
            _entry("filter-forward", [
                "ct state new jump service-endpoints-check",
                "ct state new jump cluster-ips-check",
            ], f"type filter hook forward priority -110; {nat}"),
            # Before DNAT the destination is still the service address.
            _entry("filter-output", [
                "ct state new jump service-endpoints-check",
                "ct state new jump nodeport-endpoints-check",
            ], f"type filter hook output priority -110; {nat}"),
            # After DNAT, whatever still targets the service CIDR matched no service.
            _entry("filter-output-post-dnat", ["ct state new jump cluster-ips-check"],
                   f"type filter hook output priority -90; {nat}"),
            _entry("nat-prerouting", ["jump services"], f"type nat hook prerouting priority -100; {nat}"),
            _entry("nat-output", ["jump services"], f"type nat hook output priority -100; {nat}"),
            _entry("nat-postrouting", [
                # Hairpin: a pod that reached itself through a service must see another source.
                "ct status dnat ip saddr . ip daddr @hairpin-endpoints masquerade fully-random",
                "jump masquerading",
            ], f"type nat hook postrouting priority 100; {nat}"),
            _entry("services", [
                "ip daddr . meta l4proto . th dport vmap @service-ips",
                "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
            ]),
            _entry("service-endpoints-check", ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]),
            _entry("nodeport-endpoints-check",
                   ["ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"]),
            _entry("cluster-ips-check", [
                "ip daddr @cluster-ips reject",
                f"ip daddr {service_cidr} reject",
            ]),
            _entry("reject-chain", ["meta l4proto tcp reject with tcp reset", "reject"]),
            _entry("mark-for-masquerade", [f"meta mark set meta mark | {MASQ_MARK}"]),
            _entry("masquerading", [
                f"meta mark & {MASQ_MARK} == 0 return",
                f"meta mark set meta mark ^ {MASQ_MARK}",
                # route_localnet lets 127.0.0.1 reach a NodePort; such packets must be rewritten.
                "masquerade fully-random",
            ]),
        ]
    )


def build_ruleset(table: str, services: Iterable[Obj], slices: Iterable[Obj], node: NodeInfo) -> str:
    return render(table, service_ports(services, slices), node)

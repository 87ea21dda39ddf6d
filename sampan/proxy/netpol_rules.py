"""NetworkPolicy semantics as data, and that data as an nftables ruleset.

Pure functions: policies + pods + namespaces -> ``Plan`` -> nft text. Nothing here talks
to the kernel or the API, so every rule of the Kubernetes semantics is unit-testable.

The ruleset lives in one ``inet`` table hooked at ``forward``: with br_netfilter's
``bridge-nf-call-iptables`` on, frames between pods on the same Linux bridge go through
the IP forward hook with conntrack attached (this kernel has no bridge-family conntrack,
so a ``bridge`` table could not tell replies from new connections). Traffic the node
itself sends or receives never crosses ``forward``, so kubelet probes and pod -> node
traffic stay allowed, as Kubernetes promises.

A local pod isolated for a direction gets a chain keyed by its IP (``ingress_<ip>``,
``egress_<ip>``) that returns for allowed traffic and drops the rest; the base chain
jumps to the egress chain of the source and then the ingress chain of the destination.
Peer addresses of each policy rule live in named interval sets.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sampan.api.selectors import LabelSelector, SelectorError, label_selector_from_dict

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class PortMatch:
    """A protocol with a port range; ``start is None`` means every port of the protocol."""

    protocol: str  # tcp | udp | sctp
    start: int | None = None
    end: int | None = None

    def matches(self, protocol: str, port: int) -> bool:
        if protocol != self.protocol:
            return False
        return self.start is None or self.start <= port <= (self.end or self.start)

    def nft(self) -> str:
        text = f"meta l4proto {self.protocol}"
        if self.start is not None:
            rng = f"{self.start}-{self.end}" if self.end and self.end != self.start else str(self.start)
            text += f" th dport {rng}"
        return text


@dataclass
class AddrSet:
    """Peer networks of one policy rule (both families)."""

    name: str
    comment: str
    networks: list[Network] = field(default_factory=list)

    def contains(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in self.networks)

    def __post_init__(self) -> None:
        self._families = {v: [n for n in self.networks if n.version == v] for v in (4, 6)}

    def family(self, version: int) -> list[Network]:
        return self._families[version]


@dataclass
class AddrPortSet:
    """Egress named ports: (destination pod IP, resolved port) pairs for one protocol."""

    name: str
    comment: str
    protocol: str
    elements: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # IPv6 addresses, and only they, contain a colon: no parsing needed.
        self._families = {v: [e for e in self.elements if (":" in e[0]) == (v == 6)] for v in (4, 6)}

    def family(self, version: int) -> list[tuple[str, int]]:
        return self._families[version]


@dataclass(frozen=True)
class Rule:
    """One allow rule in a pod chain: peers (None = anyone) and a port (None = any traffic)."""

    peers: str | None = None
    port: PortMatch | None = None
    addr_ports: str | None = None  # an AddrPortSet replacing peers + port


@dataclass
class Plan:
    """What one node enforces: per local pod IP, the allow rules of each isolated direction."""

    ingress: dict[str, list[Rule]] = field(default_factory=dict)
    egress: dict[str, list[Rule]] = field(default_factory=dict)
    sets: dict[str, AddrSet] = field(default_factory=dict)
    addr_port_sets: dict[str, AddrPortSet] = field(default_factory=dict)

    def allows(self, src: str, dst: str, protocol: str = "tcp", port: int = 80) -> bool:
        """Would a new connection be accepted (the same decisions the nft rules make)."""
        if src == dst:
            return True  # a pod cannot block itself
        if src in self.egress and not self._match(self.egress[src], dst, dst, protocol, port):
            return False
        return dst not in self.ingress or self._match(self.ingress[dst], src, dst, protocol, port)

    def _match(self, rules: list[Rule], peer: str, dst: str, protocol: str, port: int) -> bool:
        for rule in rules:
            if rule.addr_ports is not None:
                aps = self.addr_port_sets[rule.addr_ports]
                if protocol == aps.protocol and (dst, port) in aps.elements:
                    return True
                continue
            if rule.peers is not None and not self.sets[rule.peers].contains(peer):
                continue
            if rule.port is None or rule.port.matches(protocol, port):
                return True
        return False


# -- object helpers --------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(entry.get("ip")) for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    out = []
    for ip in ips:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            continue
    return out


def is_policy_pod(pod: Obj) -> bool:
    """Pods that policies see: on the pod network, with an address, not finished."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    return bool(pod_ips(pod))


def _selector(spec: Mapping | None, what: str) -> LabelSelector:
    try:
        return label_selector_from_dict(spec)
    except SelectorError as exc:
        log.warning("ignoring invalid %s: %s", what, exc)
        return LabelSelector.match_nothing()


def policy_types(policy: Obj) -> list[str]:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return [str(t) for t in types]
    return ["Ingress"] + (["Egress"] if spec.get("egress") else [])


def _named_ports(pod: Obj) -> dict[tuple[str, str], int]:
    """Named containerPorts by (name, protocol): named rule ports resolve against these."""
    out: dict[tuple[str, str], int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cp in container.get("ports") or []:
            protocol = PROTOCOLS.get(str(cp.get("protocol") or "TCP").upper())
            if cp.get("name") and protocol:
                try:
                    out.setdefault((str(cp["name"]), protocol), int(cp["containerPort"]))
                except (KeyError, TypeError, ValueError):
                    continue
    return out


def _short(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def chain_name(direction: str, ip: str) -> str:
    return f"{direction}_{ip.replace(':', '_')}"


# -- building the plan -----------------------------------------------------------------


@dataclass
class _PodInfo:
    """A pod with what the rules read from it parsed once."""

    obj: Obj
    key: str
    namespace: str
    labels: Mapping[str, str]
    ips: list[str]
    nets: list[Network]
    named: dict[tuple[str, str], int]  # (port name, nft protocol) -> containerPort


class _Builder:
    def __init__(self, policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj]) -> None:
        self.policies = sorted(policies, key=lambda p: (_meta(p).get("namespace", ""), _meta(p).get("name", "")))
        self.pods: list[_PodInfo] = []
        for obj in pods:
            if not is_policy_pod(obj):
                continue
            meta, ips = _meta(obj), pod_ips(obj)
            self.pods.append(_PodInfo(obj, str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"),
                                      str(meta.get("namespace") or ""), meta.get("labels") or {}, ips,
                                      [ipaddress.ip_network(ip) for ip in ips], _named_ports(obj)))
        self.pods.sort(key=lambda p: p.ips[0])
        self.by_namespace: dict[str, list[_PodInfo]] = {}
        for info in self.pods:
            self.by_namespace.setdefault(info.namespace, []).append(info)
        self.ns_labels: dict[str, Mapping[str, str]] = {}
        for ns in namespaces:
            name = str(_meta(ns).get("name", ""))
            self.ns_labels[name] = {NAME_LABEL: name, **(_meta(ns).get("labels") or {})}
        self._peer_cache: dict[str, list[_PodInfo]] = {}
        self._nets_cache: dict[str, list[Network]] = {}
        self.plan = Plan()

    def namespace_labels(self, ns: str) -> Mapping[str, str]:
        return self.ns_labels.get(ns) or {NAME_LABEL: ns}

    def selected(self, policy: Obj) -> list[_PodInfo]:
        ns = _meta(policy).get("namespace", "")
        sel = _selector((policy.get("spec") or {}).get("podSelector") or {}, "podSelector")
        return [p for p in self.by_namespace.get(ns, []) if sel.matches(p.labels)]

    def peer_selection(self, policy_ns: str, peer: Obj) -> list[_PodInfo]:
        """Pods one selector peer names; policies often repeat peers, so results are cached."""
        cache_key = json.dumps([policy_ns, peer.get("podSelector"), peer.get("namespaceSelector"),
                                "podSelector" in peer, "namespaceSelector" in peer], sort_keys=True)
        hit = self._peer_cache.get(cache_key)
        if hit is not None:
            return hit
        pod_sel = _selector(peer.get("podSelector") or {}, "podSelector") if "podSelector" in peer else None
        if "namespaceSelector" in peer:
            ns_sel = _selector(peer.get("namespaceSelector") or {}, "namespaceSelector")
            namespaces = [ns for ns in self.by_namespace if ns_sel.matches(self.namespace_labels(ns))]
        else:
            namespaces = [policy_ns]  # podSelector alone: the policy's own namespace
        out = [p for ns in namespaces for p in self.by_namespace.get(ns, [])
               if pod_sel is None or pod_sel.matches(p.labels)]  # both given: AND
        self._peer_cache[cache_key] = out
        return out

    def peer_pods(self, policy_ns: str, peers: list[Obj]) -> tuple[list[_PodInfo], list[Network]]:
        """Pods and IP blocks a rule's peer list names (peers are OR-ed)."""
        pods: dict[str, _PodInfo] = {}
        blocks: list[Network] = []
        for peer in peers:
            peer = peer or {}
            if "ipBlock" in peer:
                blocks += _ip_block(peer.get("ipBlock") or {})
            elif "podSelector" in peer or "namespaceSelector" in peer:
                pods.update((p.key, p) for p in self.peer_selection(policy_ns, peer))
            # an empty peer is invalid upstream: it names nothing
        return list(pods.values()), blocks

    def build(self, local: set[str]) -> Plan:
        for policy in self.policies:
            types = policy_types(policy)
            targets = [p for p in self.selected(policy) if set(p.ips) & local]
            if not targets:
                continue
            spec = policy.get("spec") or {}
            key = f"{_meta(policy).get('namespace', '')}/{_meta(policy).get('name', '')}"
            for direction, peer_field in (("ingress", "from"), ("egress", "to")):
                if direction.capitalize() not in types:
                    continue
                chains = self.plan.ingress if direction == "ingress" else self.plan.egress
                for pod in targets:
                    for ip in pod.ips:
                        if ip in local:
                            chains.setdefault(ip, [])
                for index, rule in enumerate(spec.get(direction) or []):
                    self.add_rule(direction, key, index, rule or {}, peer_field, targets, local)
        return self.plan

    def add_rule(self, direction: str, key: str, index: int, rule: Obj, peer_field: str,
                 targets: list[_PodInfo], local: set[str]) -> None:
        chains = self.plan.ingress if direction == "ingress" else self.plan.egress
        policy_ns = key.split("/", 1)[0]
        peers = rule.get(peer_field)
        set_name: str | None = None
        peer_pods: list[_PodInfo] = self.pods
        blocks: list[Network] = []
        if peers:
            peer_pods, blocks = self.peer_pods(policy_ns, peers)
            set_name = f"{direction[:2]}_{_short(key)}_{index}"
            cache_key = json.dumps([policy_ns, peers], sort_keys=True)
            collapsed = self._nets_cache.get(cache_key)
            if collapsed is None:
                nets = [n for p in peer_pods for n in p.nets] + blocks
                collapsed = [n for v in (4, 6) for n in ipaddress.collapse_addresses(
                    [x for x in nets if x.version == v])]  # type: ignore[type-var]
                self._nets_cache[cache_key] = collapsed
            self.plan.sets[set_name] = AddrSet(set_name, f"{key} {direction}[{index}]", collapsed)
        ports = rule.get("ports") or []
        for pod in targets:
            for ip in (i for i in pod.ips if i in local):
                out = chains[ip]
                if not ports:
                    out.append(Rule(set_name, None))
                    continue
                for pi, port in enumerate(ports):
                    port = port or {}
                    protocol = PROTOCOLS.get(str(port.get("protocol") or "TCP").upper())
                    if protocol is None:
                        continue
                    value = port.get("port")
                    if isinstance(value, str) and not value.isdigit():
                        if direction == "ingress":
                            number = pod.named.get((value, protocol))
                            if number is not None:
                                out.append(Rule(set_name, PortMatch(protocol, number, number)))
                        else:
                            name = self.egress_named(key, index, pi, value, protocol, bool(peers), peer_pods, blocks)
                            out.append(Rule(addr_ports=name))
                        continue
                    out.append(Rule(set_name, _port_match(protocol, value, port.get("endPort"))))

    def egress_named(self, key: str, index: int, port_index: int, name: str, protocol: str,
                     has_peers: bool, peer_pods: list[_PodInfo], blocks: list[Network]) -> str:
        """Named egress ports resolve per destination pod: (pod IP, its port number) pairs."""
        set_name = f"eg_{_short(key)}_{index}_p{port_index}"
        if set_name in self.plan.addr_port_sets:
            return set_name
        pods = {p.key: p for p in peer_pods}
        if has_peers and blocks:
            for pod in self.pods:  # pods inside an ipBlock count as destinations too
                if any(n.version == b.version and n.subnet_of(b) for n in pod.nets for b in blocks):  # type: ignore
                    pods.setdefault(pod.key, pod)
        elements = sorted({(ip, n) for p in pods.values() if (n := p.named.get((name, protocol))) is not None
                           for ip in p.ips})
        self.plan.addr_port_sets[set_name] = AddrPortSet(
            set_name, f"{key} egress[{index}] port {name}", protocol, elements)
        return set_name


def _port_match(protocol: str, value: Any, end_port: Any) -> PortMatch:
    if value is None:
        return PortMatch(protocol)
    try:
        start = int(value)
        end = int(end_port) if end_port is not None else start
    except (TypeError, ValueError):
        return PortMatch(protocol)
    return PortMatch(protocol, start, end if end >= start else start)


def _ip_block(block: Obj) -> list[Network]:
    try:
        cidr = ipaddress.ip_network(str(block.get("cidr", "")), strict=False)
    except ValueError:
        log.warning("ignoring invalid ipBlock cidr %r", block.get("cidr"))
        return []
    remaining = [cidr]
    for text in block.get("except") or []:
        try:
            hole = ipaddress.ip_network(str(text), strict=False)
        except ValueError:
            continue
        nxt: list[Network] = []
        for net in remaining:
            if hole.version == net.version and hole.subnet_of(net):  # type: ignore[arg-type]
                nxt.extend(net.address_exclude(hole))  # type: ignore[arg-type]
            elif hole.version == net.version and net.subnet_of(hole):  # type: ignore[arg-type]
                continue
            else:
                nxt.append(net)
        remaining = nxt
    return remaining


def build_plan(policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj],
               node_name: str | None = None) -> Plan:
    """The node's plan; pods are local when ``spec.nodeName`` is ``node_name`` (None: all)."""
    pods = list(pods)
    local = {ip for p in pods if is_policy_pod(p)
             and (node_name is None or (p.get("spec") or {}).get("nodeName") == node_name) for ip in pod_ips(p)}
    return _Builder(policies, pods, namespaces).build(local)


# -- rendering -------------------------------------------------------------------------


def _rule_lines(plan: Plan, direction: str, ip: str, rules: list[Rule]) -> list[str]:
    side = "saddr" if direction == "ingress" else "daddr"
    version = ipaddress.ip_address(ip).version
    fam = "ip" if version == 4 else "ip6"
    lines = [f"{fam} {side} {ip} return"]  # a pod never blocks itself (hairpin through a Service)
    for rule in rules:
        if rule.addr_ports is not None:
            aps = plan.addr_port_sets[rule.addr_ports]
            if aps.family(version):
                lines.append(f"meta l4proto {aps.protocol} {fam} daddr . th dport @{aps.name}_v{version} return")
            continue
        parts = []
        if rule.peers is not None:
            if not plan.sets[rule.peers].family(version):
                continue  # no peer of this family: the rule allows nothing here
            parts.append(f"{fam} {side} @{rule.peers}_v{version}")
        if rule.port is not None:
            parts.append(rule.port.nft())
        lines.append(" ".join(parts + ["return"]))
    lines.append("drop")
    return lines


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'")[:120] + '"'


def render(plan: Plan, table: str) -> str:
    """The table's full definition (without the replace-transaction wrapper)."""
    out = [f"table inet {table} {{"]
    for aset in plan.sets.values():
        for version, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            nets = aset.family(version)
            if nets:
                elems = ", ".join(str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in nets)
                out.append(f"\tset {aset.name}_v{version} {{ type {typ}; flags interval; "
                           f"comment {_quote(aset.comment)}; elements = {{ {elems} }} }}")
    for aps in plan.addr_port_sets.values():
        for version, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            pairs = aps.family(version)
            if pairs:
                elems = ", ".join(f"{ip} . {port}" for ip, port in pairs)
                out.append(f"\tset {aps.name}_v{version} {{ type {typ} . inet_service; "
                           f"comment {_quote(aps.comment)}; elements = {{ {elems} }} }}")
    for direction, chains in (("egress", plan.egress), ("ingress", plan.ingress)):
        for ip, rules in chains.items():
            out.append(f"\tchain {chain_name(direction, ip)} {{")
            out += [f"\t\t{line}" for line in _rule_lines(plan, direction, ip, rules)]
            out.append("\t}")
    out.append("\tchain forward {")
    out.append("\t\ttype filter hook forward priority filter; policy accept;")
    out.append("\t\tct state established,related accept")
    # Bridged IPv6 neighbour discovery crosses this hook too: isolated v6 pods must still resolve.
    out.append("\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert }"
               " accept")
    for direction, side in (("egress", "saddr"), ("ingress", "daddr")):
        chains = getattr(plan, direction)
        for version, fam in ((4, "ip"), (6, "ip6")):
            ips = [ip for ip in chains if ipaddress.ip_address(ip).version == version]
            if ips:
                elems = ", ".join(f"{ip} : jump {chain_name(direction, ip)}" for ip in ips)
                out.append(f"\t\t{fam} {side} vmap {{ {elems} }}")
    out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def replace_transaction(plan: Plan, table: str) -> str:
    """One ``nft -f`` transaction that swaps the whole table atomically."""
    return f"table inet {table} {{}}\ndelete table inet {table}\n" + render(plan, table)


def delete_transaction(table: str) -> str:
    return f"table inet {table} {{}}\ndelete table inet {table}\n"

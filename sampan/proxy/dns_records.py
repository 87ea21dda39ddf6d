"""Cluster DNS records built from the Service, EndpointSlice and Pod caches (no I/O).

Names follow the Kubernetes DNS specification (what CoreDNS's kubernetes plugin serves):
``<svc>.<ns>.svc.<zone>`` (ClusterIP, or the ready endpoints of a headless Service),
``<host>.<svc>.<ns>.svc.<zone>`` (an endpoint's hostname or dashed IP),
``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV, ExternalName CNAMEs,
``a-b-c-d.<ns>.pod.<zone>`` and PTR records under in-addr.arpa / ip6.arpa.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]

TTL = 5  # CoreDNS kubernetes plugin default
NAMESPACE_INDEX = "namespace"
SVC_BY_IP = "dns-service-ip"
SLICE_BY_SERVICE = "dns-slice-service"
SLICE_BY_IP = "dns-slice-ip"
POD_BY_IP = "dns-pod-ip"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Lookup(Protocol):
    """What an informer (or its Cache) offers: objects by key and by index value."""

    def get(self, key: str) -> Obj | None: ...

    def by_index(self, name: str, value: str) -> list[Obj]: ...


@dataclass(frozen=True)
class Record:
    """One resource record; ``value`` is an address, a target name, or (prio, weight, port, target) for SRV."""

    name: str
    rtype: str
    value: Any
    ttl: int = TTL


@dataclass
class Answer:
    rcode: str = "NOERROR"  # or NXDOMAIN
    answers: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    # Outside the zone (or an unknown reverse name): ask the upstream resolvers.
    forward: bool = False
    # ExternalName target to resolve and append (CNAME chasing).
    chase: str | None = None


# -- indexes --------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def service_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = [ip for ip in spec.get("clusterIPs") or [] if ip and ip != "None"]
    one = spec.get("clusterIP")
    if not ips and one and one != "None":
        ips = [one]
    return ips


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return [str(ip) for ip in ips]


def slice_service_key(slice_: Obj) -> list[str]:
    meta = _meta(slice_)
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace')}/{svc}"] if svc else []


def slice_ips(slice_: Obj) -> list[str]:
    return [a for ep in slice_.get("endpoints") or [] for a in ep.get("addresses") or []]


INDEXERS: dict[str, tuple[str, Any]] = {
    # index name -> (which cache, function)
    SVC_BY_IP: ("services", service_ips),
    SLICE_BY_SERVICE: ("slices", slice_service_key),
    SLICE_BY_IP: ("slices", slice_ips),
    POD_BY_IP: ("pods", pod_ips),
}


def add_indexers(services: Any, slices: Any, pods: Any | None) -> None:
    """Registers the indexes :class:`ClusterRecords` reads (informers or Caches)."""
    caches = {"services": services, "slices": slices, "pods": pods}
    for name, (which, fn) in INDEXERS.items():
        if caches[which] is not None:
            caches[which].add_indexer(name, fn)


# -- names ----------------------------------------------------------------------------


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str | None:
    """``10-0-0-1`` -> ``10.0.0.1`` (IPv6 labels use dashes for colons)."""
    for candidate in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def reverse_to_ip(name: str) -> str | None:
    """``1.0.0.10.in-addr.arpa`` -> ``10.0.0.1``; None for partial or malformed names."""
    if name.endswith(".in-addr.arpa"):
        parts = name[: -len(".in-addr.arpa")].split(".")
        if len(parts) != 4:
            return None
        text = ".".join(reversed(parts))
    elif name.endswith(".ip6.arpa"):
        nibbles = name[: -len(".ip6.arpa")].split(".")
        if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
            return None
        hexes = "".join(reversed(nibbles))
        text = ":".join(hexes[i : i + 4] for i in range(0, 32, 4))
    else:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def is_reverse(name: str) -> bool:
    return name.endswith(".in-addr.arpa") or name.endswith(".ip6.arpa") or name in ("in-addr.arpa", "ip6.arpa")


def _family(ip: str) -> str:
    return "AAAA" if ":" in ip else "A"


# -- the records ----------------------------------------------------------------------


class ClusterRecords:
    """Answers one question at a time from the caches; ``pods_verified`` (CoreDNS ``pods verified``)
    answers pod names only for pods that exist with that address in that namespace."""

    def __init__(
        self,
        services: Lookup,
        slices: Lookup,
        pods: Lookup | None,
        zone: str = "cluster.local",
        pods_verified: bool = True,
    ) -> None:
        self.services, self.slices, self.pods = services, slices, pods
        self.zone = zone.strip(".").lower()
        self.pods_verified = pods_verified

    # -- entry point -------------------------------------------------------------
    def lookup(self, qname: str, qtype: str) -> Answer:
        name = qname.lower().rstrip(".")
        if is_reverse(name):
            return self._reverse(name, qtype)
        if name == self.zone:
            return self._apex(qtype)
        if not name.endswith("." + self.zone):
            return Answer(forward=True)
        labels = name[: -len(self.zone) - 1].split(".")
        kind, rest = labels[-1], labels[:-1]
        if kind == "svc":
            return self._svc(rest, qtype)
        if kind == "pod":
            return self._pod(rest, qtype)
        return Answer("NXDOMAIN")

    def soa(self) -> Record:
        return Record(self.zone, "SOA", (f"ns.dns.{self.zone}", f"hostmaster.{self.zone}", 7200, 1800, 86400, TTL))

    def _apex(self, qtype: str) -> Answer:
        if qtype == "SOA":
            return Answer(answers=[self.soa()])
        if qtype == "NS":
            return Answer(answers=[Record(self.zone, "NS", f"ns.dns.{self.zone}")])
        return Answer()

    # -- services ----------------------------------------------------------------
    def _svc(self, labels: list[str], qtype: str) -> Answer:
        if not labels:
            return Answer()  # svc.<zone> itself exists
        ns = labels[-1]
        if len(labels) == 1:
            return Answer() if self.services.by_index(NAMESPACE_INDEX, ns) else Answer("NXDOMAIN")
        svc = self.services.get(f"{ns}/{labels[-2]}")
        if svc is None:
            return Answer("NXDOMAIN")
        base = f"{labels[-2]}.{ns}.svc.{self.zone}"
        if len(labels) == 2:
            return self._service(svc, base, qtype)
        if len(labels) == 3:
            return self._endpoint_name(svc, base, labels[0], qtype)
        if len(labels) == 4 and labels[0].startswith("_") and labels[1].startswith("_"):
            return self._srv(svc, base, labels[0][1:], labels[1][1:], qtype)
        return Answer("NXDOMAIN")

    def _service(self, svc: Obj, base: str, qtype: str) -> Answer:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").rstrip(".").lower()
            if not target:
                return Answer("NXDOMAIN")
            chase = target if qtype in ("A", "AAAA") else None
            return Answer(answers=[Record(base, "CNAME", target)], chase=chase)
        if is_headless(svc):
            eps = self._ready_endpoints(svc)
            if not eps:
                return Answer("NXDOMAIN")  # as CoreDNS: a headless Service without ready endpoints
            if qtype == "SRV":
                return self._srv_all(svc, base, eps)
            ips = sorted({ip for _, ip, _ in eps})
            return self._addresses(base, ips, qtype)
        ips = service_ips(svc)
        if not ips:
            return Answer("NXDOMAIN")
        if qtype == "SRV":
            return self._srv_all(svc, base, None)
        return self._addresses(base, ips, qtype)

    def _addresses(self, name: str, ips: Iterable[str], qtype: str) -> Answer:
        want = ("A", "AAAA") if qtype == "ANY" else (qtype,)
        return Answer(answers=[Record(name, _family(ip), ip) for ip in ips if _family(ip) in want])

    def _ready_endpoints(self, svc: Obj) -> list[tuple[Obj, str, Obj]]:
        """(endpoint, address, its slice) for ready endpoints, one per address."""
        key = f"{_meta(svc).get('namespace')}/{_meta(svc).get('name')}"
        seen: set[str] = set()
        out: list[tuple[Obj, str, Obj]] = []
        for slice_ in self.slices.by_index(SLICE_BY_SERVICE, key):
            if slice_.get("addressType") not in ("IPv4", "IPv6"):
                continue
            for ep in slice_.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue  # unset means ready
                for ip in ep.get("addresses") or []:
                    if ip not in seen:
                        seen.add(ip)
                        out.append((ep, ip, slice_))
        out.sort(key=lambda t: t[1])
        return out

    def _endpoint_label(self, ep: Obj, ip: str) -> str:
        return str(ep.get("hostname") or dashed(ip)).lower()

    def _endpoint_name(self, svc: Obj, base: str, label: str, qtype: str) -> Answer:
        if label.startswith("_"):
            # _<proto>.<svc>: an empty non-terminal when some port uses that protocol
            protos = {str(p.get("protocol") or "TCP").lower() for p in (svc.get("spec") or {}).get("ports") or []}
            return Answer() if label[1:] in protos else Answer("NXDOMAIN")
        if not is_headless(svc):
            return Answer("NXDOMAIN")
        ips = [ip for ep, ip, _ in self._ready_endpoints(svc) if self._endpoint_label(ep, ip) == label]
        if not ips:
            return Answer("NXDOMAIN")
        return self._addresses(f"{label}.{base}", ips, qtype)

    def _srv(self, svc: Obj, base: str, port_name: str, proto: str, qtype: str) -> Answer:
        ports = [
            p
            for p in (svc.get("spec") or {}).get("ports") or []
            if str(p.get("name") or "").lower() == port_name and str(p.get("protocol") or "TCP").lower() == proto
        ]
        if not ports or (svc.get("spec") or {}).get("type") == "ExternalName":
            return Answer("NXDOMAIN")
        eps = self._ready_endpoints(svc) if is_headless(svc) else None
        if eps is not None and not eps:
            return Answer("NXDOMAIN")
        full = self._srv_all(svc, base, eps, (port_name, proto))
        if qtype != "SRV":
            return Answer()  # the name exists; only SRV data lives here
        full.answers = [Record(f"_{port_name}._{proto}.{base}", r.rtype, r.value) for r in full.answers]
        return full

    def _srv_all(
        self, svc: Obj, base: str, eps: list[tuple[Obj, str, Obj]] | None, only: tuple[str, str] | None = None
    ) -> Answer:
        """SRV records for named ports: to the Service name, or one per ready endpoint (headless)."""
        targets: list[tuple[int, str, str]] = []  # (port, target, address)
        for port in (svc.get("spec") or {}).get("ports") or []:
            pname = str(port.get("name") or "").lower()
            proto = str(port.get("protocol") or "TCP").lower()
            if only is not None and (pname, proto) != only:
                continue
            if eps is None:
                targets += [(int(port.get("port") or 0), base, ip) for ip in service_ips(svc)][:1]
                continue
            for ep, ip, slice_ in eps:
                ep_port = next(
                    (
                        p.get("port")
                        for p in slice_.get("ports") or []
                        if str(p.get("name") or "").lower() == pname and str(p.get("protocol") or "TCP").lower() == proto
                    ),
                    None,
                )
                if ep_port:
                    targets.append((int(ep_port), f"{self._endpoint_label(ep, ip)}.{base}", ip))
        if not targets:
            return Answer()
        weight = max(1, 100 // len(targets))
        answers = [Record(base, "SRV", (0, weight, port, target)) for port, target, _ in targets]
        extra: dict[tuple[str, str], Record] = {}
        for _, target, ip in targets:
            if eps is None:
                for sip in service_ips(svc):
                    extra[(target, sip)] = Record(target, _family(sip), sip)
            else:
                extra[(target, ip)] = Record(target, _family(ip), ip)
        return Answer(answers=answers, additional=list(extra.values()))

    # -- pods --------------------------------------------------------------------
    def _pod(self, labels: list[str], qtype: str) -> Answer:
        if len(labels) <= 1:
            return Answer()  # pod.<zone> and <ns>.pod.<zone>
        if len(labels) != 2:
            return Answer("NXDOMAIN")
        ip = undashed(labels[0])
        if ip is None:
            return Answer("NXDOMAIN")
        if self.pods_verified:
            pods = self.pods.by_index(POD_BY_IP, ip) if self.pods is not None else []
            if not any(_meta(p).get("namespace") == labels[1] for p in pods):
                return Answer("NXDOMAIN")
        return self._addresses(f"{labels[0]}.{labels[1]}.pod.{self.zone}", [ip], qtype)

    # -- reverse -----------------------------------------------------------------
    def ptr_name(self, ip: str) -> str | None:
        """The name an address maps back to: Service, headless endpoint, pod, other endpoint."""
        for svc in self.services.by_index(SVC_BY_IP, ip):
            return f"{_meta(svc).get('name')}.{_meta(svc).get('namespace')}.svc.{self.zone}"
        slices = self.slices.by_index(SLICE_BY_IP, ip)
        for slice_ in slices:
            for svc_key in slice_service_key(slice_):
                svc = self.services.get(svc_key)
                if svc is None or not is_headless(svc):
                    continue
                for ep in slice_.get("endpoints") or []:
                    if ip in (ep.get("addresses") or []) and ep.get("hostname"):
                        ns, name = svc_key.split("/", 1)
                        return f"{ep['hostname']}.{name}.{ns}.svc.{self.zone}".lower()
        if self.pods is not None:
            for pod in self.pods.by_index(POD_BY_IP, ip):
                return f"{dashed(ip)}.{_meta(pod).get('namespace')}.pod.{self.zone}"
        for slice_ in slices:
            for svc_key in slice_service_key(slice_):
                ns, name = svc_key.split("/", 1)
                return f"{dashed(ip)}.{name}.{ns}.svc.{self.zone}"
        return None

    def _reverse(self, name: str, qtype: str) -> Answer:
        ip = reverse_to_ip(name)
        target = self.ptr_name(ip) if ip else None
        if target is None:
            return Answer(forward=True)  # fall through to the upstream resolvers, as CoreDNS does
        if qtype not in ("PTR", "ANY"):
            return Answer()
        return Answer(answers=[Record(name, "PTR", target)])

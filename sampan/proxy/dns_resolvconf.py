"""A pod's /etc/resolv.conf from its dnsPolicy and dnsConfig (what the kubelet writes)."""

from __future__ import annotations

from typing import Any

from sampan.proxy.dns_wire import parse_resolv_conf

Obj = dict[str, Any]

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
DEFAULT_OPTIONS = ["ndots:5"]


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in items if i and not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def _merge_options(existing: list[str], extra: list[Obj]) -> list[str]:
    """Pod options replace existing ones of the same name; the rest are appended."""
    merged: dict[str, str] = {}
    for opt in existing:
        name, sep, value = opt.partition(":")
        merged[name] = opt
    for opt in extra:
        name = str(opt.get("name") or "")
        if not name:
            continue
        value = opt.get("value")
        merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return list(merged.values())


def _fit_searches(searches: list[str]) -> list[str]:
    searches = searches[:MAX_SEARCHES]
    while searches and len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches = searches[:-1]
    return searches


def effective_policy(pod: Obj, cluster_dns_ip: str | None) -> str:
    """"cluster", "host" or "none"."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "Default":
        return "host"
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        return "host"  # host-network pods only use cluster DNS when they ask (ClusterFirstWithHostNet)
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns_ip:
        return "cluster"
    return "host"  # no cluster DNS configured: the kubelet falls back to the host's


def pod_resolv_conf(pod: Obj, cluster_dns_ip: str | None, cluster_domain: str = "cluster.local", host_resolv: str = "") -> str:
    """The resolv.conf text for ``pod``; ``host_resolv`` is the node's resolv.conf content."""
    host_servers, host_searches, host_options = parse_resolv_conf(host_resolv)
    policy = effective_policy(pod, cluster_dns_ip)
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    domain = cluster_domain.strip(".")
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy == "cluster":
        servers = [s.strip() for s in str(cluster_dns_ip).split(",")]
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain, *host_searches]
        options = list(DEFAULT_OPTIONS)
    elif policy == "host":
        servers, searches, options = host_servers, host_searches, host_options
    cfg = (pod.get("spec") or {}).get("dnsConfig") or {}
    servers = _unique(servers + [str(s) for s in cfg.get("nameservers") or []])[:MAX_NAMESERVERS]
    searches = _fit_searches(_unique(searches + [str(s).rstrip(".") for s in cfg.get("searches") or []]))
    options = _merge_options(options, cfg.get("options") or [])
    lines: list[str] = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {s}" for s in servers]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n" if lines else ""

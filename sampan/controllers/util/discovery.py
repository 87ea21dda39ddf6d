"""Which resources the server serves, for controllers that act on every kind (namespace
deletion, garbage collection). In the server process this reads the registry's resource
table directly, so custom resources appear as soon as their CRD is established."""

from __future__ import annotations

from dataclasses import dataclass

from sampan.apiserver.resources import ResourceInfo, version_priority
from sampan.client.interface import Client, ResourceRef


@dataclass(frozen=True)
class Served:
    ref: ResourceRef
    kind: str
    verbs: frozenset[str]


def _table_resources(client: Client) -> list[ResourceInfo]:
    registry = getattr(client, "registry", None)
    table = getattr(registry, "table", None)
    return list(table) if table is not None else []


def table_generation(client: Client) -> int:
    """Changes whenever the served resources change (CRDs come and go)."""
    registry = getattr(client, "registry", None)
    return int(getattr(getattr(registry, "table", None), "generation", 0))


def served_resources(client: Client) -> list[Served]:
    """One entry per (group, resource): the preferred version, like discovery's preferred resources."""
    best: dict[tuple[str, str], ResourceInfo] = {}
    for info in _table_resources(client):
        if info.virtual:
            continue
        key = (info.group, info.plural)
        found = best.get(key)
        if found is None or version_priority(info.version) < version_priority(found.version):
            best[key] = info
    return [
        Served(ResourceRef(i.group, i.version, i.plural, i.namespaced), i.kind, frozenset(i.verbs))
        for i in best.values()
    ]


def resource_for_kind(client: Client, api_version: str, kind: str) -> ResourceRef | None:
    """The resource serving ``kind`` in ``api_version`` (an ownerReference's target)."""
    group, _, version = api_version.rpartition("/")
    fallback: ResourceRef | None = None
    for info in _table_resources(client):
        if info.group == group and info.kind == kind and not info.virtual:
            ref = ResourceRef(info.group, info.version, info.plural, info.namespaced)
            if info.version == version:
                return ref
            fallback = fallback or ref
    return fallback

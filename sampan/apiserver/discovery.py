"""Discovery documents, legacy (per group-version) and aggregated (apidiscovery v2),
built from the resource table on every request so CRDs show up at once."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sampan.api import errors
from sampan.apiserver import negotiation as neg
from sampan.apiserver.resources import ResourceInfo, ResourceTable

Doc = dict[str, Any]


def _gv(group: str, version: str) -> Doc:
    return {"groupVersion": f"{group}/{version}" if group else version, "version": version}


def api_versions(request: web.Request) -> Doc:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
    }


def api_group(group: str, versions: list[str]) -> Doc:
    return {
        "name": group,
        "versions": [_gv(group, v) for v in versions],
        "preferredVersion": _gv(group, versions[0]),
    }


def api_group_list(table: ResourceTable) -> Doc:
    groups = [api_group(g, vs) for g, vs in table.groups()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _legacy_entry(info: ResourceInfo) -> Doc:
    entry: Doc = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    return entry


def api_resource_list(table: ResourceTable, group: str, version: str) -> Doc:
    resources: list[Doc] = []
    for info in sorted(table.for_group_version(group, version), key=lambda r: r.plural):
        resources.append(_legacy_entry(info))
        for sub in info.subresources.values():
            entry: Doc = {"name": f"{info.plural}/{sub.name}", "singularName": "", "namespaced": info.namespaced}
            if sub.group is not None:
                entry["group"], entry["version"] = sub.group, sub.version
            entry["kind"] = sub.kind
            entry["verbs"] = list(sub.verbs)
            resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": _gv(group, version)["groupVersion"],
        "resources": resources,
    }


def _aggregated_resource(info: ResourceInfo) -> Doc:
    entry: Doc = {
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    subs = []
    for sub in info.subresources.values():
        kind = {
            "group": sub.group if sub.group is not None else info.group,
            "version": sub.version or info.version,
            "kind": sub.kind,
        }
        subs.append({"subresource": sub.name, "responseKind": kind, "verbs": list(sub.verbs)})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(table: ResourceTable, core: bool) -> Doc:
    groups = [("", ["v1"])] if core else table.groups()
    items = []
    for group, versions in groups:
        version_docs = []
        for v in versions:
            resources = sorted(table.for_group_version(group, v), key=lambda r: r.plural)
            version_docs.append(
                {"version": v, "resources": [_aggregated_resource(r) for r in resources], "freshness": "Current"}
            )
        metadata: Doc = {"creationTimestamp": None}
        if group:
            metadata["name"] = group
        items.append({"metadata": metadata, "versions": version_docs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def respond_root(request: web.Request, table: ResourceTable, core: bool) -> web.Response:
    if neg.wants_discovery_v2(request):
        body = neg.dumps(aggregated(table, core))
        response = web.Response(body=body, status=200)
        # client-go tells aggregated from legacy by this exact media type.
        response.headers["Content-Type"] = neg.DISCOVERY_V2
        response.headers["Vary"] = "Accept"
        return response
    return neg.respond(api_versions(request) if core else api_group_list(table))


def group_doc(table: ResourceTable, group: str) -> Doc:
    versions = table.versions_of(group)
    if not versions:
        raise errors.path_not_found()
    return {"kind": "APIGroup", "apiVersion": "v1", **api_group(group, versions)}


def group_version_doc(table: ResourceTable, group: str, version: str) -> Doc:
    if group and version not in table.versions_of(group):
        raise errors.path_not_found()
    if not group and version != "v1":
        raise errors.path_not_found()
    return api_resource_list(table, group, version)

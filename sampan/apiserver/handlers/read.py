"""GET of one object or a collection, as objects, Tables or partial metadata."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sampan.api import errors
from sampan.apiserver import negotiation as neg
from sampan.apiserver.handlers.params import list_options
from sampan.apiserver.routes import ResourceRequest
from sampan.registry import subresources
from sampan.registry.registry import Registry

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def _include_object(request: web.Request) -> str:
    value = request.query.get("includeObject", "") or "Metadata"
    if value not in INCLUDE_OBJECT:
        raise errors.bad_request(
            f'includeObject: Unsupported value: "{value}": supported values: "Metadata", "None", "Object"'
        )
    return value


def table_for(rr: ResourceRequest, objects: list[dict], include: str, version: str = "v1") -> dict[str, Any]:
    from sampan.api.tables import build_table  # loaded by the first Table request, not at start-up

    table = build_table(rr.info.group, rr.info.plural, objects, include_object=include, columns=rr.info.printer_columns)
    table["apiVersion"] = f"meta.k8s.io/{version}"
    return table


def partial(obj: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata") or {},
    }


def render(
    request: web.Request,
    rr: ResourceRequest,
    obj: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """One object in the shape the client asked for."""
    out = neg.negotiate(request, for_list=False)
    if obj.get("kind") == "Status" or rr.subresource not in ("", "status"):
        return neg.respond(obj, status, out, headers)
    if out.shape == "Table":
        table = table_for(rr, [obj], _include_object(request), out.version)
        table["metadata"] = {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion", "")}
        return neg.respond(table, status, out, headers)
    if out.shape == "PartialObjectMetadata":
        return neg.respond(partial(obj, out.version), status, out, headers)
    return neg.respond(obj, status, out, headers)


async def get(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    if rr.subresource == "scale":
        scale = await subresources.get_scale(rs, rr.namespace, rr.name)
        out = neg.negotiate(request, for_list=False)
        if out.shape == "Table":
            from sampan.api.tables import build_table

            table = build_table("autoscaling", "scales", [scale], include_object=_include_object(request))
            table["apiVersion"] = f"meta.k8s.io/{out.version}"
            table["metadata"] = {"resourceVersion": (scale.get("metadata") or {}).get("resourceVersion", "")}
            return neg.respond(table, 200, out)
        return neg.respond(scale, 200, out)
    return render(request, rr, await rs.get(rr.namespace, rr.name))


async def list_(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    out = neg.negotiate(request, for_list=True)
    include = _include_object(request) if out.shape == "Table" else "Metadata"
    result = await rs.list(rr.namespace, list_options(request))
    if out.shape == "Table":
        table = table_for(rr, result["items"], include, out.version)
        table["metadata"] = result["metadata"]
        return neg.respond(table, 200, out)
    if out.shape == "PartialObjectMetadataList":
        items = [partial(i, out.version) for i in result["items"]]
        body = {
            "kind": "PartialObjectMetadataList",
            "apiVersion": f"meta.k8s.io/{out.version}",
            "metadata": result["metadata"],
            "items": items,
        }
        return neg.respond(body, 200, out)
    return neg.respond(result, 200, out)

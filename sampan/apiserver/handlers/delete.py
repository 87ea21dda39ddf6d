"""DELETE of one object or a collection."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sampan.apiserver import negotiation as neg
from sampan.apiserver.handlers.params import delete_options, list_options
from sampan.apiserver.handlers.read import render
from sampan.apiserver.routes import ResourceRequest
from sampan.registry.registry import Registry


async def _options_body(request: web.Request) -> dict[str, Any] | None:
    raw = await neg.read_body(request)
    if not raw.strip():
        return None
    return neg.decode_object(raw, neg.content_type(request), "DeleteOptions")


async def delete(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    opts = delete_options(request, await _options_body(request))
    result, _removed = await rs.delete(rr.namespace, rr.name, opts)
    return render(request, rr, result, 200)


async def delete_collection(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    opts = delete_options(request, await _options_body(request))
    result = await rs.delete_collection(rr.namespace, list_options(request), opts)
    return neg.respond(result, 200, neg.negotiate(request, for_list=True))

"""Watch responses: one compact JSON event per line, flushed as it happens."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from aiohttp import web

from sampan.apiserver import negotiation as neg
from sampan.apiserver.handlers.params import list_options
from sampan.apiserver.handlers.read import _include_object, partial, table_for
from sampan.apiserver.routes import ResourceRequest
from sampan.registry.registry import Registry
from sampan.registry.shared_events import LineCache

# Without timeoutSeconds upstream keeps a watch open for the minimum request
# timeout (30 minutes), randomized so reconnects spread out.
MIN_REQUEST_TIMEOUT = 1800.0
# Encoded lines of shared event objects, reused by every watcher of the same event.
_LINES = LineCache()


def _encode(kind: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


class _Shaper:
    """Turns event objects into what the client asked for (object, Table row, metadata)."""

    def __init__(self, request: web.Request, rr: ResourceRequest) -> None:
        self.rr = rr
        self.out = neg.negotiate(request, for_list=False)
        self.include = _include_object(request) if self.out.shape == "Table" else "Metadata"
        self.headers_sent = False

    def line(self, kind: str, obj: dict[str, Any]) -> bytes:
        """The wire form of one event; plain objects and metadata are encoded once for all watchers."""
        if kind in ("ERROR", "BOOKMARK") or self.out.shape == "Table":
            return _encode(kind, self.shape(kind, obj))
        form = f"{self.out.shape}/{self.out.version}"
        return _LINES.get(obj, kind, form, lambda: _encode(kind, self.shape(kind, obj)))

    def shape(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        if kind in ("ERROR", "BOOKMARK") or self.out.shape == "object":
            return obj
        if self.out.shape == "PartialObjectMetadata":
            return partial(obj, self.out.version)
        table = table_for(self.rr, [obj], self.include, self.out.version)
        table["metadata"] = {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion", "")}
        if self.headers_sent:
            table["columnDefinitions"] = []  # only the first event carries the columns
        self.headers_sent = True
        return table


async def serve_watch(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    opts = list_options(request)
    if rr.name:
        name_term = f"metadata.name={rr.name}"
        opts.field_selector = f"{opts.field_selector},{name_term}" if opts.field_selector else name_term
    shaper = _Shaper(request, rr)
    # Shared objects: this path only encodes them, never mutates them.
    events = await rs.watch(rr.namespace, opts, shared=True)  # bad options fail here, before the 200
    timeout = opts.timeout_seconds or MIN_REQUEST_TIMEOUT * (1 + random.random())
    response = web.StreamResponse(status=200, headers={"Content-Type": neg.JSON, "Cache-Control": "no-cache, private"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        async with asyncio.timeout(timeout):
            async for kind, obj in events:
                line = shaper.line(kind, obj)
                await response.write(line)
                if kind == "ERROR":
                    break
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    try:
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response

"""aiohttp handlers for pods/exec, pods/attach and pods/portforward.

The API server's routes look the pod up (and authorize the request), then call these with
the pod object and the backend that reaches the node running it.
"""

from __future__ import annotations

from aiohttp import web

from sampan.api import errors
from sampan.apiserver import negotiation as neg
from sampan.apiserver.streaming import exec as exec_, portforward
from sampan.apiserver.streaming.backend import StreamBackend
from sampan.apiserver.streaming.upgrade import wants_spdy, wants_websocket
from sampan.apiserver.streaming.wschannel import select_protocol


def _upgrade_required() -> errors.APIError:
    return errors.bad_request("Upgrade request required")


async def handle_exec(request: web.Request, pod: dict, backend: StreamBackend) -> web.StreamResponse:
    return await _exec_or_attach(request, pod, backend, attach=False)


async def handle_attach(request: web.Request, pod: dict, backend: StreamBackend) -> web.StreamResponse:
    return await _exec_or_attach(request, pod, backend, attach=True)


async def _exec_or_attach(request: web.Request, pod: dict, backend: StreamBackend, attach: bool) -> web.StreamResponse:
    try:
        if wants_websocket(request):
            return await exec_.serve_websocket(request, pod, backend, attach)
        if wants_spdy(request):
            return await exec_.serve_spdy(request, pod, backend, attach)
        raise _upgrade_required()
    except errors.APIError as exc:
        return neg.error_response(exc)


async def handle_portforward(request: web.Request, pod: dict, backend: StreamBackend) -> web.StreamResponse:
    try:
        if wants_websocket(request):
            if select_protocol(request, (portforward.SPDY_WS_PROTOCOL,)) == portforward.SPDY_WS_PROTOCOL:
                return await portforward.serve_spdy_websocket(request, pod, backend)
            return await portforward.serve_channels(request, pod, backend)
        if wants_spdy(request):
            return await portforward.serve_spdy_upgrade(request, pod, backend)
        raise _upgrade_required()
    except errors.APIError as exc:
        return neg.error_response(exc)

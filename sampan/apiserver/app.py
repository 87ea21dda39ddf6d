"""The aiohttp application: routes, authentication, metrics and error handling."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from sampan.api import errors
from sampan.apiserver import discovery, keys, misc, nodecerts
from sampan.apiserver import negotiation as neg
from sampan.apiserver.handlers import delete, read, write
from sampan.apiserver.metrics import Metrics
from sampan.apiserver.routes import ResourceRequest, parse_resource_path
from sampan.apiserver.watch import serve_watch
from sampan.registry.registry import Registry

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Paths anyone may read, like upstream's system:public-info-viewer role.
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", nodecerts.CA_PATH)
POD_STREAMS = ("log", "exec", "attach", "portforward")

_VERB_HANDLERS = {
    "get": read.get,
    "list": read.list_,
    "watch": serve_watch,
    "create": write.create,
    "update": write.update,
    "patch": write.patch,
    "delete": delete.delete,
    "deletecollection": delete.delete_collection,
}
_METRIC_VERBS = {"create": "POST", "update": "PUT", "deletecollection": "DELETECOLLECTION"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.APIError as exc:
        return neg.error_response(exc)
    except web.HTTPNotFound:
        return neg.error_response(errors.path_not_found())
    except web.HTTPMethodNotAllowed:
        return neg.error_response(
            errors.APIError(
                errors.status_object(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            )
        )
    except web.HTTPException as exc:
        return neg.error_response(errors.APIError(errors.status_object(exc.status, "", exc.reason)))
    except Exception as exc:  # a bug: answer 500 as a Status, never a stack trace
        log.exception("internal error serving %s %s", request.method, request.path)
        return neg.error_response(errors.internal(exc))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    authenticator = request.app.get(keys.AUTHENTICATOR)
    if authenticator is None:
        return await handler(request)
    user = authenticator.authenticate(request)
    if user is None:
        path = request.path.rstrip("/") or "/"
        if any(path == p or path.startswith(p + "/") for p in PUBLIC_PATHS):
            return await handler(request)
        raise errors.unauthorized()
    request[keys.USER] = user
    return await handler(request)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics: Metrics = request.app[keys.METRICS]
    started = time.monotonic()
    metrics.inflight += 1
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    finally:
        metrics.inflight -= 1
        labels = request.get(keys.METRIC_LABELS) or (request.method, "", "", "", "")
        metrics.observe(labels, code, time.monotonic() - started)


async def _resources(request: web.Request, group: str, version: str, parts: list[str]) -> web.StreamResponse:
    registry: Registry = request.app[keys.REGISTRY]
    watch = request.query.get("watch", "") in ("true", "1", "True")
    rr = parse_resource_path(registry.table, group, version, parts, request.method, watch)
    verb = rr.verb.upper() if rr.verb not in _METRIC_VERBS else _METRIC_VERBS[rr.verb]
    if rr.verb == "patch" and neg.content_type(request) == "application/apply-patch+yaml":
        verb = "APPLY"
    request[keys.METRIC_LABELS] = (verb, group, version, rr.info.plural, rr.subresource)
    if rr.subresource in POD_STREAMS:
        return await _pod_stream(request, rr, registry)
    if rr.info.group == "metrics.k8s.io":
        from sampan.apiserver import metrics_api

        return await metrics_api.serve(request, rr, registry)
    return await _VERB_HANDLERS[rr.verb](request, rr, registry)


async def _pod_stream(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    """Exec, attach and port-forward go to the stream backend of the pod's node."""
    pod = await registry.must("", "v1", "pods").get(rr.namespace, rr.name)
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f"pod {rr.name} does not have a host assigned")
    backend = request.app.get(keys.STREAM_BACKEND)
    if backend is not None and hasattr(backend, "serves") and not backend.serves(pod):
        backend = None  # a NodeStreams without an agent for this node
    if backend is None or (rr.subresource == "log" and not hasattr(backend, "logs")):
        raise errors.service_unavailable(f"no node agent is serving node {node}")
    if rr.subresource == "log":
        from sampan.apiserver.streaming.logs import serve_logs

        return await serve_logs(request, pod, backend)
    from sampan.apiserver import streaming

    handler = {
        "exec": streaming.handle_exec,
        "attach": streaming.handle_attach,
        "portforward": streaming.handle_portforward,
    }[rr.subresource]
    return await handler(request, pod, backend)


def _parts(tail: str) -> list[str]:
    tail = tail.strip("/")
    return tail.split("/") if tail else []


async def core_api(request: web.Request) -> web.StreamResponse:
    parts = _parts(request.match_info.get("tail", ""))
    table = request.app[keys.REGISTRY].table
    if not parts:
        return discovery.respond_root(request, table, core=True)
    if len(parts) == 1:
        return neg.respond(discovery.group_version_doc(table, "", parts[0]))
    if parts[0] != "v1":
        raise errors.path_not_found()
    return await _resources(request, "", "v1", parts[1:])


async def group_api(request: web.Request) -> web.StreamResponse:
    parts = _parts(request.match_info.get("tail", ""))
    table = request.app[keys.REGISTRY].table
    if not parts:
        return discovery.respond_root(request, table, core=False)
    if len(parts) == 1:
        return neg.respond(discovery.group_doc(table, parts[0]))
    if len(parts) == 2:
        return neg.respond(discovery.group_version_doc(table, parts[0], parts[1]))
    if parts[1] not in table.versions_of(parts[0]):
        raise errors.path_not_found()
    return await _resources(request, parts[0], parts[1], parts[2:])


async def not_found(request: web.Request) -> web.StreamResponse:
    raise errors.path_not_found()


def build_app(
    registry: Registry,
    authenticator: Any = None,
    pki: Any = None,
    stream_backend: Any = None,
    ready: asyncio.Event | None = None,
) -> web.Application:
    """``authenticator`` None serves everyone as an anonymous admin (tests, in-process use)."""
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware, auth_middleware], client_max_size=neg.MAX_BODY + 1
    )
    app[keys.REGISTRY] = registry
    app[keys.AUTHENTICATOR] = authenticator
    app[keys.PKI] = pki
    app[keys.STREAM_BACKEND] = stream_backend
    app[keys.METRICS] = Metrics()
    app[keys.OPENAPI] = misc.OpenAPICache(registry.table)
    if ready is None:
        ready = asyncio.Event()
        ready.set()
    app[keys.READY] = ready
    r = app.router
    for path in ("/version", "/version/"):
        r.add_get(path, misc.version)
    for name in ("healthz", "livez", "readyz"):
        r.add_get(f"/{name}", misc.health)
        r.add_get(f"/{name}/", misc.health)
        r.add_get(f"/{name}/{{check:.+}}", misc.health)
    r.add_get("/metrics", misc.metrics)
    r.add_get("/openapi/v2", misc.openapi_v2)
    r.add_get("/openapi/v3", misc.openapi_v3)
    r.add_get("/openapi/v3/{tail:.*}", misc.openapi_v3)
    r.add_post(nodecerts.SIGN_PATH, nodecerts.handle)  # remote agents' serving certificates
    r.add_get(nodecerts.CA_PATH, nodecerts.cacerts)  # what a joining agent checks its token's CA hash against
    for prefix, handler in (("/api", core_api), ("/apis", group_api)):
        r.add_route("*", prefix, handler)
        r.add_route("*", prefix + "/{tail:.*}", handler)
    r.add_route("*", "/{tail:.*}", not_found)
    return app

"""pods/log: options parsed and checked like the API server, the text streamed from the
backend of the pod's node (which reads the CRI log files)."""

from __future__ import annotations

from aiohttp import web

from sampan.api import errors
from sampan.apiserver.streaming.backend import StreamError, send_chunks


def _int(request: web.Request, name: str, minimum: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f"{name}: invalid value {raw!r}") from None
    if value < minimum:
        raise errors.invalid("PodLogOptions", "", "", [errors.cause(
            "FieldValueInvalid", f"Invalid value: {value}: must be greater than {minimum - 1}", name)])
    return value


def _bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


async def serve_logs(request: web.Request, pod: dict, backend: object) -> web.StreamResponse:
    from sampan.node.streams import LogError, LogOptions

    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    containers = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    container = request.query.get("container", "")
    if not container:
        if len(containers) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
                + (f" or one of the init containers: [{' '.join(inits)}]" if inits else ""))
        container = containers[0]
    if container not in containers + inits:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    opts = LogOptions(
        container=container, follow=_bool(request, "follow"), previous=_bool(request, "previous"),
        tail_lines=_int(request, "tailLines", 0), since_seconds=_int(request, "sinceSeconds", 1),
        since_time=request.query.get("sinceTime") or None, timestamps=_bool(request, "timestamps"),
        limit_bytes=_int(request, "limitBytes", 1),
    )
    try:
        chunks = backend.logs(pod, opts)  # type: ignore[attr-defined]
        first = await anext(chunks, None)
    except (LogError, StreamError) as exc:
        raise errors.bad_request(str(exc)) from None
    return await send_chunks(request, first, chunks, "text/plain")

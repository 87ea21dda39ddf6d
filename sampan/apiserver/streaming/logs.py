"""pods/log: options parsed and checked like the API server, the text streamed from the
backend of the pod's node (which reads the CRI log files)."""

from __future__ import annotations

from aiohttp import web

from sampan.api import errors
from sampan.apiserver.streaming.backend import StreamError, pick_container, send_chunks


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

    container = pick_container(pod, request.query.get("container", ""))
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

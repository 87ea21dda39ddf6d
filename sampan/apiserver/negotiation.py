"""Content negotiation: what the client accepts, how its body is encoded, and the
JSON/YAML responses. Responses are JSON unless the client only takes YAML; a client
that offers protobuf also takes JSON (client-go decodes by response content type)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from sampan.api import errors

MAX_BODY = 3 * 1024 * 1024
JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
SERVED_TYPES = [JSON, YAML, PROTOBUF]


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict[str, str]

    @property
    def as_(self) -> str:
        return self.params.get("as", "")


def parse_accept(header: str) -> list[MediaRange]:
    ranges: list[tuple[float, int, MediaRange]] = []
    for i, part in enumerate(header.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        q = params.pop("q", "1")
        try:
            weight = float(q)
        except ValueError:
            weight = 1.0
        if weight > 0:
            ranges.append((-weight, i, MediaRange(pieces[0].lower(), params)))
    return [r for _, _, r in sorted(ranges, key=lambda t: (t[0], t[1]))]


@dataclass(frozen=True)
class Output:
    """What to answer with: ``shape`` is object, Table, PartialObjectMetadata or
    PartialObjectMetadataList; ``encoding`` json or yaml."""

    shape: str = "object"
    version: str = "v1"  # of the meta.k8s.io shape
    encoding: str = "json"


_META_SHAPES = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")


def negotiate(request: web.Request, for_list: bool) -> Output:
    header = request.headers.get("Accept", "")
    if not header.strip():
        return Output()
    for mr in parse_accept(header):
        if mr.type in (JSON, "application/*", "*/*", PROTOBUF) and not mr.as_:
            return Output()
        if mr.type == YAML and not mr.as_:
            return Output(encoding="yaml")
        if mr.type in (JSON, PROTOBUF) and mr.as_ in _META_SHAPES:
            if mr.params.get("g") == "meta.k8s.io" and mr.params.get("v") in ("v1", "v1beta1"):
                shape = mr.as_
                if shape == "PartialObjectMetadata" and for_list:
                    continue  # a list needs the List form; try the next offer
                if shape == "PartialObjectMetadataList" and not for_list:
                    continue
                return Output(shape, mr.params["v"])
    raise errors.not_acceptable(SERVED_TYPES)


def wants_discovery_v2(request: web.Request) -> bool:
    for mr in parse_accept(request.headers.get("Accept", "")):
        if mr.type == JSON and mr.as_ == "APIGroupDiscoveryList":
            if mr.params.get("g") == "apidiscovery.k8s.io" and mr.params.get("v") == "v2":
                return True
        elif mr.type in (JSON, "*/*", "application/*", PROTOBUF):
            return False
    return False


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


def respond(
    data: Any, status: int = 200, output: Output | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    if output is not None and output.encoding == "yaml":
        body = yaml.safe_dump(data, sort_keys=False).encode()
        return web.Response(body=body, status=status, content_type=YAML, headers=headers)
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON, headers=headers)


def error_response(err: errors.APIError) -> web.Response:
    return web.Response(body=orjson.dumps(err.status), status=err.code, content_type=JSON, headers=err.headers or None)


# -- request bodies -------------------------------------------------------------------------
async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None:
        if request.content_length > MAX_BODY:
            raise errors.request_entity_too_large(MAX_BODY)
        return await request.read()  # the parser stops at the declared length
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.request_entity_too_large(MAX_BODY)
        chunks.append(chunk)
    return b"".join(chunks)


def content_type(request: web.Request) -> str:
    raw = request.headers.get("Content-Type", "")
    return raw.split(";")[0].strip().lower()


def unrecognized(kind: str, detail: str) -> errors.APIError:
    return errors.bad_request(f"the object provided is unrecognized (must be of type {kind}): {detail}")


def decode_json(body: bytes, kind: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise unrecognized(kind, f"couldn't get version/kind; json parse error: {exc}") from None


def decode_yaml(body: bytes, kind: str) -> Any:
    try:
        return yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise unrecognized(kind, f"error converting YAML to JSON: {exc}") from None


def decode_object(body: bytes, ctype: str, kind: str) -> dict[str, Any]:
    """An object body of POST/PUT in any accepted encoding."""
    if not body.strip():
        raise unrecognized(kind, "couldn't get version/kind; json parse error: unexpected end of JSON input")
    if ctype in ("", JSON, "*/*"):
        data = decode_json(body, kind)
    elif ctype in (YAML, "application/x-yaml", "text/yaml"):
        data = decode_yaml(body, kind)
    elif ctype == PROTOBUF:
        from sampan.api.protobuf import decode_request_body  # rare: not loaded until used

        try:
            data = decode_request_body(body)
        except Exception as exc:  # any decoding failure is the client's body
            raise unrecognized(kind, str(exc)) from None
    else:
        raise errors.unsupported_media_type(SERVED_TYPES)
    if not isinstance(data, dict):
        detail = "json: cannot unmarshal array into Go value of type struct"
        raise unrecognized(kind, f"couldn't get version/kind; json parse error: {detail}")
    return data

"""POST, PUT and PATCH on resources and their subresources."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from sampan.api import errors
from sampan.apiserver import negotiation as neg
from sampan.apiserver.handlers import actions
from sampan.apiserver.handlers.params import write_options
from sampan.apiserver.handlers.read import render
from sampan.apiserver.routes import ResourceRequest
from sampan.registry import hooks, subresources
from sampan.registry.options import WriteOptions
from sampan.registry.registry import Registry


def expected_type(rr: ResourceRequest) -> tuple[str, str, str]:
    """(kind, group, version) a body sent to this URL must have."""
    info = rr.info
    if rr.subresource in ("", "status", "finalize"):
        return info.kind, info.group, info.version
    sub = info.subresources[rr.subresource]
    group = sub.group if sub.group is not None else info.group
    return sub.kind, group, sub.version or info.version


def check_type(obj: dict[str, Any], kind: str, group: str, version: str) -> None:
    """Fill a missing apiVersion/kind from the URL; refuse ones that disagree with it."""
    expected = f"{group}/{version}" if group else version
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.get(field, ""), str):
            detail = f"json: cannot unmarshal {type(obj[field]).__name__} into Go struct field .{field} of type string"
            raise neg.unrecognized(kind, f"couldn't get version/kind; json parse error: {detail}")
    api_version = obj.get("apiVersion")
    if api_version:
        body_group = api_version.rpartition("/")[0]
        # Another version of the same group is what a conversion would accept (Eviction v1beta1).
        if api_version != expected and not (kind == "Eviction" and body_group == group):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({expected})"
            )
    else:
        obj["apiVersion"] = expected
    body_kind = obj.get("kind")
    if body_kind and body_kind != kind:
        raise errors.bad_request(
            f'{body_kind} in version "{version}" cannot be handled as a {kind}: '
            f"the kind in the data ({body_kind}) does not match the expected kind ({kind})"
        )
    obj["kind"] = kind


async def body_object(request: web.Request, rr: ResourceRequest) -> dict[str, Any]:
    kind, group, version = expected_type(rr)
    raw = await neg.read_body(request)
    obj = neg.decode_object(raw, neg.content_type(request), kind)
    check_type(obj, kind, group, version)
    return obj


def _warning_headers(opts: WriteOptions) -> dict[str, str] | None:
    if not opts.warnings:
        return None
    # One header with comma-separated warn-values is equivalent to several headers.
    # dict.fromkeys: a write retried after a conflict reports each warning once.
    quoted = (w.replace("\\", "\\\\").replace('"', '\\"') for w in dict.fromkeys(opts.warnings))
    return {"Warning": ", ".join(f'299 - "{w}"' for w in quoted)}


async def create(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    opts = write_options(request)
    if rr.info.virtual or rr.subresource:
        obj = await body_object(request, rr)
        result, code = await actions.create_action(request, rr, registry, obj, opts)
        return neg.respond(result, code)
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    obj = await body_object(request, rr)
    created = await rs.create(rr.namespace, obj, opts)
    return render(request, rr, created, 201, _warning_headers(opts))


async def update(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    opts = write_options(request)
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    obj = await body_object(request, rr)
    if rr.subresource == "scale":
        return neg.respond(await subresources.update_scale(rs, rr.namespace, rr.name, obj, opts))
    if rr.subresource == "finalize":
        result = await subresources.finalize_namespace(rs, rr.name, obj, opts)
    else:
        result = await rs.update(rr.namespace, rr.name, obj, opts, rr.subresource)
    return render(request, rr, result, 200, _warning_headers(opts))


def decode_patch(body: bytes, patch_type: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if patch_type != hooks.PATCH_APPLY:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
    try:
        return yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error decoding YAML: {exc}") from None


async def patch(request: web.Request, rr: ResourceRequest, registry: Registry) -> web.StreamResponse:
    opts = write_options(request)
    rs = registry.must(rr.info.group, rr.info.version, rr.info.plural)
    patch_type = neg.content_type(request)
    allowed = hooks.accepted_patch_types(rr.info)
    if patch_type not in allowed:
        raise errors.unsupported_media_type(allowed)
    body = decode_patch(await neg.read_body(request), patch_type)
    if patch_type == hooks.PATCH_APPLY and not request.query.get("fieldManager"):
        opts.field_manager = ""  # apply needs an explicit manager, not one guessed from the User-Agent
    if rr.subresource == "scale":
        return neg.respond(await subresources.patch_scale(rs, rr.namespace, rr.name, patch_type, body, opts))
    result, created = await rs.patch(rr.namespace, rr.name, patch_type, body, opts, rr.subresource)
    return render(request, rr, result, 201 if created else 200, _warning_headers(opts))

"""Create-only endpoints that store nothing or act on another object: access and
identity reviews, pods/binding, pods/eviction, serviceaccounts/token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sampan.api import errors
from sampan.apiserver import keys
from sampan.apiserver.routes import ResourceRequest
from sampan.registry import subresources
from sampan.registry.meta import meta, timestamp
from sampan.registry.options import WriteOptions
from sampan.registry.registry import Registry

DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600


def _user_dict(request: web.Request) -> dict[str, Any]:
    user = request.get(keys.USER)
    if user is None:
        return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    return user.to_dict()


async def create_action(
    request: web.Request, rr: ResourceRequest, registry: Registry, body: dict[str, Any], opts: WriteOptions
) -> tuple[dict[str, Any], int]:
    """Returns (response body, HTTP code)."""
    key = rr.info.plural if not rr.subresource else f"{rr.info.plural}/{rr.subresource}"
    handler = _ACTIONS.get(key)
    if handler is None:
        raise errors.method_not_supported(errors.GroupResource(rr.info.group, key), "create")
    return await handler(request, rr, registry, body, opts)


async def _access_review(request, rr, registry, body, opts):  # type: ignore[no-untyped-def]
    # Authorization is not enforced yet: every authenticated user may do everything.
    body.setdefault("metadata", {})
    body["status"] = {"allowed": True, "reason": "no authorizer is configured; everything is allowed"}
    return body, 201


async def _rules_review(request, rr, registry, body, opts):  # type: ignore[no-untyped-def]
    body.setdefault("metadata", {})
    body["status"] = {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False,
    }
    return body, 201


async def _self_review(request, rr, registry, body, opts):  # type: ignore[no-untyped-def]
    body.setdefault("metadata", {})
    body["status"] = {"userInfo": _user_dict(request)}
    return body, 201


async def _token_review(request, rr, registry, body, opts):  # type: ignore[no-untyped-def]
    authenticator = request.app.get(keys.AUTHENTICATOR)
    token = (body.get("spec") or {}).get("token", "")
    user = authenticator.authenticate_token(token) if authenticator is not None and token else None
    body.setdefault("metadata", {})
    status: dict[str, Any] = {"authenticated": user is not None}
    if user is not None:
        status["user"] = user.to_dict()
        status["audiences"] = (body.get("spec") or {}).get("audiences") or list(authenticator.audiences)
    else:
        status["error"] = "invalid bearer token"
    body["status"] = status
    return body, 201


async def _binding(request, rr, registry, body, opts):  # type: ignore[no-untyped-def]
    rs = registry.must("", "v1", "pods")
    return await subresources.bind_pod(rs, rr.namespace, rr.name, body, opts), 201


async def _eviction(request, rr, registry, body, opts):  # type: ignore[no-untyped-def]
    name = meta(body).get("name")
    if name and name != rr.name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    rs = registry.must("", "v1", "pods")
    return await subresources.evict_pod(rs, rr.namespace, rr.name, body, opts), 201


async def _token_request(request, rr, registry, body, opts):  # type: ignore[no-untyped-def]
    from sampan.apiserver.authn import issue_service_account_token

    pki = request.app.get(keys.PKI)
    if pki is None:
        raise errors.service_unavailable("this server has no service account signing key")
    sa = await registry.must("", "v1", "serviceaccounts").get(rr.namespace, rr.name)
    spec = body.setdefault("spec", {})
    seconds = int(spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
    if seconds < MIN_TOKEN_SECONDS:
        cause = errors.cause(
            "FieldValueInvalid",
            f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
            "spec.expirationSeconds",
        )
        raise errors.invalid("TokenRequest", "authentication.k8s.io", rr.name, [cause])
    audiences = spec.get("audiences") or []
    authenticator = request.app.get(keys.AUTHENTICATOR)
    if not audiences and authenticator is not None:
        audiences = list(authenticator.audiences)
    bound = spec.get("boundObjectRef")
    token, expires = issue_service_account_token(
        pki, rr.namespace, rr.name, meta(sa).get("uid", ""), audiences, seconds, bound
    )
    spec["audiences"], spec["expirationSeconds"] = audiences, seconds
    m = body.setdefault("metadata", {})
    m.update({"name": rr.name, "namespace": rr.namespace, "creationTimestamp": timestamp()})
    body["status"] = {"token": token, "expirationTimestamp": expires}
    return body, 201


_ACTIONS = {
    "selfsubjectaccessreviews": _access_review,
    "selfsubjectrulesreviews": _rules_review,
    "selfsubjectreviews": _self_review,
    "tokenreviews": _token_review,
    "pods/binding": _binding,
    "pods/eviction": _eviction,
    "serviceaccounts/token": _token_request,
}

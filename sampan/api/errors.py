"""API errors as upstream ``Status`` objects.

Each constructor words its message the way apimachinery's ``errors.go`` does, because
kubectl prints these strings verbatim and clients branch on ``reason`` and ``code``.
Note the asymmetry upstream has: NotFound/AlreadyExists/Conflict put the resource
plural in ``details.kind``, Invalid puts the Kind there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

OPTIMISTIC_LOCK_MESSAGE = "the object has been modified; please apply your changes to the latest version and try again"


class GroupResource(NamedTuple):
    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


class GroupKind(NamedTuple):
    group: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


def status_object(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }
    if not reason:
        del status["reason"]
    return status


def status_success(details: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        status["details"] = details
    return status


class APIError(Exception):
    """An error that is answered to the client as a ``Status``."""

    def __init__(self, status: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.headers = headers or {}

    @property
    def code(self) -> int:
        return int(self.status["code"])

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.status.get("message", ""))


def _details(gr: GroupResource, name: str = "", **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if gr.group:
        details["group"] = gr.group
    if gr.resource:
        details["kind"] = gr.resource
    details.update({k: v for k, v in extra.items() if v})
    return details


def not_found(gr: GroupResource, name: str) -> APIError:
    return APIError(status_object(404, "NotFound", f'{gr} "{name}" not found', _details(gr, name)))


def path_not_found() -> APIError:
    """An unknown URL or resource type."""
    return APIError(status_object(404, "NotFound", "the server could not find the requested resource"))


def already_exists(gr: GroupResource, name: str) -> APIError:
    return APIError(status_object(409, "AlreadyExists", f'{gr} "{name}" already exists', _details(gr, name)))


def conflict(gr: GroupResource, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE) -> APIError:
    message = f'Operation cannot be fulfilled on {gr} "{name}": {why}'
    return APIError(status_object(409, "Conflict", message, _details(gr, name)))


def cause(reason: str, message: str, field: str = "") -> dict[str, str]:
    out = {"reason": reason, "message": message}
    if field:
        out["field"] = field
    return out


def _cause_text(c: dict[str, Any]) -> str:
    return f"{c['field']}: {c['message']}" if c.get("field") else str(c.get("message", ""))


def invalid(kind: str, group: str, name: str, causes: list[dict[str, Any]]) -> APIError:
    texts = [_cause_text(c) for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    gk = GroupKind(group, kind)
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind, "causes": causes}
    details = {k: v for k, v in details.items() if v}
    return APIError(status_object(422, "Invalid", f'{gk} "{name}" is invalid: {summary}', details))


def unprocessable(message: str) -> APIError:
    """A generic 422, as for a failed JSON-patch ``test`` operation."""
    return APIError(status_object(422, "Invalid", message))


def bad_request(message: str, causes: list[dict[str, Any]] | None = None) -> APIError:
    return APIError(status_object(400, "BadRequest", message, {"causes": causes} if causes else None))


def unauthorized(message: str = "") -> APIError:
    return APIError(status_object(401, "Unauthorized", message or "Unauthorized"))


def forbidden(gr: GroupResource | None, name: str, why: str, causes: list[dict[str, Any]] | None = None) -> APIError:
    if gr is None or not (gr.group or gr.resource):
        message, details = f"forbidden: {why}", {}
    elif not name:
        message, details = f"{gr} is forbidden: {why}", _details(gr)
    else:
        message, details = f'{gr} "{name}" is forbidden: {why}', _details(gr, name)
    if causes:
        details["causes"] = causes
    return APIError(status_object(403, "Forbidden", message, details))


def method_not_supported(gr: GroupResource, action: str) -> APIError:
    message = f'{action} is not supported on resources of kind "{gr}"'
    return APIError(status_object(405, "MethodNotAllowed", message, _details(gr)))


def not_acceptable(accepted: list[str]) -> APIError:
    message = "only the following media types are accepted: " + ", ".join(accepted)
    return APIError(status_object(406, "NotAcceptable", message))


def unsupported_media_type(accepted: list[str]) -> APIError:
    message = "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted)
    return APIError(status_object(415, "UnsupportedMediaType", message))


def request_entity_too_large(limit: int) -> APIError:
    return APIError(status_object(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}"))


def expired(message: str) -> APIError:
    return APIError(status_object(410, "Expired", message))


def gone(message: str) -> APIError:
    return APIError(status_object(410, "Gone", message))


def too_many_requests(message: str, retry_after_seconds: int = 0) -> APIError:
    details = {"retryAfterSeconds": retry_after_seconds} if retry_after_seconds else None
    headers = {"Retry-After": str(retry_after_seconds)} if retry_after_seconds else None
    return APIError(status_object(429, "TooManyRequests", message, details), headers)


def internal(error: object) -> APIError:
    details = {"causes": [{"message": str(error)}]}
    return APIError(status_object(500, "InternalError", f"Internal error occurred: {error}", details))


def timeout(message: str, retry_after_seconds: int = 0, causes: list[dict[str, Any]] | None = None) -> APIError:
    details: dict[str, Any] = {}
    if retry_after_seconds:
        details["retryAfterSeconds"] = retry_after_seconds
    if causes:
        details["causes"] = causes
    return APIError(status_object(504, "Timeout", f"Timeout: {message}", details))


def service_unavailable(message: str) -> APIError:
    return APIError(status_object(503, "ServiceUnavailable", message))

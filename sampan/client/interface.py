"""The one client interface every component talks to, whatever the transport.

Objects are plain dicts exactly as the API serves them. Errors are ``APIError``
carrying the server's ``Status``; an expired resourceVersion (410) is raised as
``Gone`` so informers know to list again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote

from sampan.api.errors import APIError, status_object

Obj = dict[str, Any]
PatchType = Literal["merge", "json", "strategic", "apply"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


class Gone(APIError):
    """410 Expired/Gone: the resourceVersion is older than the server keeps."""


def error_from_status(status: Any, code: int = 0, headers: dict[str, str] | None = None) -> APIError:
    """Build the right APIError for a Status body (or anything else the server sent)."""
    if not isinstance(status, dict) or status.get("kind") != "Status":
        message = status if isinstance(status, str) else f"unexpected response: {status!r}"
        status = status_object(code or 500, "", str(message)[:1000])
    elif code and not status.get("code"):
        status = {**status, "code": code}
    if "code" not in status:
        status = {**status, "code": code or 500}
    cls = Gone if int(status["code"]) == 410 else APIError
    return cls(status, headers)


def is_expired(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.code == 410


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.code == 404


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.code == 409


@dataclass(frozen=True)
class ResourceRef:
    """Which collection a call addresses: ``ResourceRef("apps", "v1", "deployments", True)``."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """URL path; a namespaced resource without a namespace means all namespaces."""
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


# Refs the built-in components use most.
NAMESPACES = ResourceRef("", "v1", "namespaces", False)
NODES = ResourceRef("", "v1", "nodes", False)
PODS = ResourceRef("", "v1", "pods")
SERVICES = ResourceRef("", "v1", "services")
ENDPOINTS = ResourceRef("", "v1", "endpoints")
CONFIGMAPS = ResourceRef("", "v1", "configmaps")
SECRETS = ResourceRef("", "v1", "secrets")
EVENTS = ResourceRef("", "v1", "events")
SERVICEACCOUNTS = ResourceRef("", "v1", "serviceaccounts")
PERSISTENTVOLUMECLAIMS = ResourceRef("", "v1", "persistentvolumeclaims")
DEPLOYMENTS = ResourceRef("apps", "v1", "deployments")
REPLICASETS = ResourceRef("apps", "v1", "replicasets")
STATEFULSETS = ResourceRef("apps", "v1", "statefulsets")
DAEMONSETS = ResourceRef("apps", "v1", "daemonsets")
CONTROLLERREVISIONS = ResourceRef("apps", "v1", "controllerrevisions")
JOBS = ResourceRef("batch", "v1", "jobs")
CRONJOBS = ResourceRef("batch", "v1", "cronjobs")
LEASES = ResourceRef("coordination.k8s.io", "v1", "leases")
ENDPOINTSLICES = ResourceRef("discovery.k8s.io", "v1", "endpointslices")


def object_key(obj: Obj) -> str:
    """The cache/work-queue key: ``namespace/name``, or ``name`` for cluster objects."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, key)


class Client(Protocol):
    """What every transport implements (HTTP for remote components, in-process in the server)."""

    async def get(self, resource: ResourceRef, name: str, namespace: str | None = None) -> Obj: ...

    async def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj: ...

    async def create(
        self,
        resource: ResourceRef,
        obj: Obj,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        subresource: str | None = None,
    ) -> Obj: ...

    async def update(self, resource: ResourceRef, obj: Obj, subresource: str | None = None) -> Obj: ...

    async def patch(
        self,
        resource: ResourceRef,
        name: str,
        patch: Any,
        patch_type: PatchType,
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
    ) -> Obj: ...

    async def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj: ...

    def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[Obj]:
        """Yields ``{"type", "object"}`` events; an ERROR event is raised as APIError/Gone."""
        ...

    async def close(self) -> None: ...


def delete_options_body(
    propagation_policy: str | None, grace_period_seconds: int | None, preconditions: dict[str, str] | None
) -> Obj:
    body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
    if propagation_policy:
        body["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        body["gracePeriodSeconds"] = grace_period_seconds
    if preconditions:
        body["preconditions"] = preconditions
    return body

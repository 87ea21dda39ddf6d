"""Parsing resource URLs against the (mutable) resource table.

/api/v1/{res}[/{name}[/{sub}]]                        cluster-scoped, or all namespaces
/api/v1/namespaces/{ns}/{res}[/{name}[/{sub}]]        namespaced
/apis/{group}/{version}/...                           the same under a group
.../watch/...                                         the deprecated watch prefix
"""

from __future__ import annotations

from dataclasses import dataclass

from sampan.api import errors
from sampan.apiserver.resources import ResourceInfo, ResourceTable


@dataclass
class ResourceRequest:
    info: ResourceInfo
    namespace: str
    name: str
    subresource: str
    verb: str  # get list watch create update patch delete deletecollection
    legacy_watch: bool = False

    @property
    def gr(self) -> errors.GroupResource:
        return errors.GroupResource(self.info.group, self.info.plural)


_METHOD_NOT_ALLOWED = "the server does not allow this method on the requested resource"


def method_not_allowed() -> errors.APIError:
    return errors.APIError(errors.status_object(405, "MethodNotAllowed", _METHOD_NOT_ALLOWED))


def parse_resource_path(
    table: ResourceTable, group: str, version: str, parts: list[str], method: str, watch_param: bool
) -> ResourceRequest:
    legacy_watch = bool(parts) and parts[0] == "watch"
    if legacy_watch:
        parts = parts[1:]
    namespace = ""
    if len(parts) >= 3 and parts[0] == "namespaces":
        candidate = table.get(group, version, parts[2])
        # /api/v1/namespaces/{name}/{status|finalize} addresses the namespace itself.
        if candidate is not None and candidate.namespaced:
            namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3 or any(not p for p in parts):
        raise errors.path_not_found()
    info = table.get(group, version, parts[0])
    if info is None or (namespace and not info.namespaced):
        raise errors.path_not_found()
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if sub and sub not in info.subresources:
        raise errors.path_not_found()
    if info.namespaced and name and not namespace:
        raise errors.path_not_found()
    verb = _verb(method, bool(name), bool(sub), watch_param or legacy_watch)
    allowed = info.subresources[sub].verbs if sub else info.verbs
    if verb not in allowed:
        raise method_not_allowed()
    if info.namespaced and not namespace and verb not in ("list", "watch"):
        raise method_not_allowed()
    return ResourceRequest(info, namespace, name, sub, verb, legacy_watch)


def _verb(method: str, has_name: bool, has_sub: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if has_name:
            return "watch" if watch and not has_sub else "get"
        return "watch" if watch else "list"
    if method == "POST":
        if has_name and not has_sub:
            raise method_not_allowed()
        return "create"
    if not has_name:
        if method == "DELETE":
            return "deletecollection"
        raise method_not_allowed()
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method) or _raise_not_allowed()


def _raise_not_allowed() -> str:
    raise method_not_allowed()

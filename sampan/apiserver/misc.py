"""Non-resource endpoints: version, health checks, metrics and OpenAPI documents."""

from __future__ import annotations

import platform
from typing import Any

from aiohttp import web

from sampan.api import errors
from sampan.api.schemas import KUBERNETES_VERSION, SERVED_MAJOR, SERVED_MINOR
from sampan.apiserver import keys, openapi, openapi_v2pb
from sampan.apiserver import negotiation as neg
from sampan.apiserver.resources import ResourceTable

BUILD_DATE = "2025-01-01T00:00:00Z"


def version_info() -> dict[str, str]:
    return {
        "major": SERVED_MAJOR,
        "minor": SERVED_MINOR,
        "gitVersion": f"v{KUBERNETES_VERSION}+sampan",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": BUILD_DATE,
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{_arch()}",
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def version(request: web.Request) -> web.Response:
    return neg.respond(version_info())


HEALTH_CHECKS = ("ping", "log", "etcd", "poststarthook/start-apiextensions-controllers")


async def health(request: web.Request) -> web.Response:
    """/healthz, /livez, /readyz and their per-check paths, answered in upstream's text form."""
    path = request.path.rstrip("/")
    check = request.match_info.get("check", "")
    started = request.app.get(keys.READY)
    ready = started is None or started.is_set() or not path.startswith("/readyz")
    if check and check not in HEALTH_CHECKS and check != "shutdown":
        raise errors.path_not_found()
    if "verbose" in request.query and not check:
        lines = [f"[{'+' if ready else '-'}]{name} {'ok' if ready else 'failed'}" for name in HEALTH_CHECKS]
        verdict = "passed" if ready else "failed"
        name = path.lstrip("/").split("/")[0]
        text = "\n".join(lines) + f"\n{name} check {verdict}\n"
    else:
        text = "ok" if ready else "not ready"
    return web.Response(text=text, status=200 if ready else 500, content_type="text/plain")


async def metrics(request: web.Request) -> web.Response:
    text = request.app[keys.METRICS].render()
    return web.Response(
        text=text, content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Options": "nosniff"}
    )


# -- OpenAPI ------------------------------------------------------------------------------------
class OpenAPICache:
    """Documents rebuilt only when the resource table changes."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table
        self._generation = -1
        self._docs: dict[str, Any] = {}

    def _fresh(self) -> dict[str, Any]:
        if self._generation != self.table.generation:
            self._docs = {}
            self._generation = self.table.generation
        return self._docs

    def v3_doc(self, path: str) -> dict[str, Any]:
        docs = self._fresh()
        if path not in docs:
            group, version = _split_gv_path(path)
            resources = self.table.for_group_version(group, version)
            if not resources:
                raise errors.path_not_found()
            docs[path] = openapi.build_openapi_v3(group, version, resources)
        return docs[path]

    def v3_root(self) -> dict[str, Any]:
        docs = self._fresh()
        if "/" not in docs:
            paths = [openapi.gv_path("", "v1")] + [openapi.gv_path(g, v) for g, vs in self.table.groups() for v in vs]
            docs["/"] = openapi.openapi_v3_root({p: openapi.content_hash(self.v3_doc(p)) for p in paths})
        return docs["/"]

    def v2(self) -> dict[str, Any]:
        docs = self._fresh()
        if "v2" not in docs:
            docs["v2"] = openapi.build_openapi_v2(list(self.table))
        return docs["v2"]

    def v2_protobuf(self) -> bytes:
        docs = self._fresh()
        if "v2pb" not in docs:
            docs["v2pb"] = openapi_v2pb.encode_document(self.v2())
        return docs["v2pb"]


def _split_gv_path(path: str) -> tuple[str, str]:
    parts = path.strip("/").split("/")
    if parts == ["api", "v1"]:
        return "", "v1"
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    raise errors.path_not_found()


async def openapi_v3(request: web.Request) -> web.Response:
    cache: OpenAPICache = request.app[keys.OPENAPI]
    tail = request.match_info.get("tail", "").strip("/")
    doc = cache.v3_doc(tail) if tail else cache.v3_root()
    # GV documents are addressed by hash, so clients may cache them for good.
    headers = {"Cache-Control": "public, immutable"} if tail and request.query.get("hash") else None
    return neg.respond(doc, headers=headers)


async def openapi_v2(request: web.Request) -> web.Response:
    accept = request.headers.get("Accept", "")
    cache: OpenAPICache = request.app[keys.OPENAPI]
    if "protobuf" in accept and "json" not in accept:
        # kubectl validates kinds the v3 documents do not name (a v1 List) against v2.
        return web.Response(body=cache.v2_protobuf(), content_type=openapi_v2pb.CONTENT_TYPE)
    return neg.respond(cache.v2())

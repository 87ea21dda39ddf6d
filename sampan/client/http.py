"""The HTTP transport: the Client interface over HTTPS with aiohttp.

One session with a keep-alive connection pool per client; JSON in and out via orjson;
watches are read as newline-delimited JSON as the server flushes them.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson

from sampan.client.interface import (
    PATCH_CONTENT_TYPES,
    Obj,
    PatchType,
    ResourceRef,
    delete_options_body,
    error_from_status,
)

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = "sampan-client/0.1"
DEFAULT_FIELD_MANAGER = "sampan"


@dataclass
class Credentials:
    server: str
    ssl_context: ssl.SSLContext | bool
    token: str | None = None
    token_file: str | None = None


def _named(entries: list[dict[str, Any]] | None, name: str, field: str) -> dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return entry.get(field) or {}
    raise ValueError(f"kubeconfig has no {field} named {name!r}")


def _resolve(base: Path, value: str) -> str:
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else base / path)


def load_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> Credentials:
    """Reads a kubeconfig file (blocking; call at startup or via ``asyncio.to_thread``)."""
    import yaml  # only kubeconfig users need it (a joined node agent has none): ~1 MB

    path = Path(path)
    config = yaml.safe_load(path.read_text()) or {}
    name = context or config.get("current-context")
    if not name:
        raise ValueError(f"{path}: no current-context")
    ctx = _named(config.get("contexts"), name, "context")
    cluster = _named(config.get("clusters"), ctx["cluster"], "cluster")
    user = _named(config.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    base = path.parent

    server = str(cluster["server"]).rstrip("/")
    sslctx: ssl.SSLContext | bool = False
    if server.startswith("https://"):
        if cluster.get("insecure-skip-tls-verify"):
            sslctx = ssl.create_default_context()
            sslctx.check_hostname = False
            sslctx.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            sslctx = ssl.create_default_context(cadata=ca)
        elif cluster.get("certificate-authority"):
            sslctx = ssl.create_default_context(cafile=_resolve(base, cluster["certificate-authority"]))
        else:
            sslctx = ssl.create_default_context()
        _load_client_cert(sslctx, user, base)

    token = user.get("token")
    token_file = _resolve(base, user["tokenFile"]) if user.get("tokenFile") else None
    return Credentials(server, sslctx, token, token_file)


def _load_client_cert(ctx: ssl.SSLContext, user: dict[str, Any], base: Path) -> None:
    if user.get("client-certificate") and user.get("client-key"):
        ctx.load_cert_chain(_resolve(base, user["client-certificate"]), _resolve(base, user["client-key"]))
        return
    if not (user.get("client-certificate-data") and user.get("client-key-data")):
        return
    # ssl only loads key pairs from files: stage them in a private directory briefly.
    with tempfile.TemporaryDirectory(prefix="sampan-kc-") as tmp:
        cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        for target, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64decode(user[field]))
        ctx.load_cert_chain(str(cert), str(key))


def _params(**values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value == "" or value is False:
            continue
        out[key] = "true" if value is True else str(value)
    return out


class HttpClient:
    """``Client`` over HTTPS. Create it anywhere; the session opens on first use."""

    def __init__(
        self,
        server: str,
        ssl_context: ssl.SSLContext | bool = False,
        token: str | None = None,
        token_file: str | None = None,
        pool_size: int = 100,
        request_timeout: float = 60.0,
    ) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_context
        self._token = token
        self._token_file = token_file
        self._pool_size = pool_size
        self._request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self._token_read_at: float | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None, **kwargs: Any) -> HttpClient:
        creds = load_kubeconfig(path, context)
        return cls(creds.server, creds.ssl_context, creds.token, creds.token_file, **kwargs)

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        token = self._token
        if self._token_file:
            token = self._file_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _file_token(self) -> str:
        # Projected tokens rotate: re-read the (tiny, page-cached) file once a minute.
        now = time.monotonic()
        if self._token_read_at is None or now - self._token_read_at > 60:
            assert self._token_file
            self._token = Path(self._token_file).read_text().strip()
            self._token_read_at = now
        return self._token or ""

    def _sess(self) -> aiohttp.ClientSession:
        import aiohttp  # here, not at import: LiteHttpClient (lite.py) shares this module without it

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._pool_size, keepalive_timeout=60)
            timeout = aiohttp.ClientTimeout(total=self._request_timeout)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One request; a non-2xx answer is raised as APIError built from its Status."""
        data = orjson.dumps(body) if body is not None else None
        headers = self._headers(content_type if data is not None else None)
        async with self._sess().request(method, self.server + path, params=params, data=data, headers=headers) as resp:
            raw = await resp.read()
            return _decode(resp, raw)

    # -- the Client interface -----------------------------------------------------
    async def get(self, resource: ResourceRef, name: str, namespace: str | None = None) -> Obj:
        return await self.request("GET", resource.path(namespace, name))

    async def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        params = _params(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            limit=limit,
            resourceVersion=resource_version,
        )
        if continue_:
            params["continue"] = continue_
        return await self.request("GET", resource.path(namespace), params)

    async def create(
        self,
        resource: ResourceRef,
        obj: Obj,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        """POST; with ``subresource`` (pods/binding, pods/eviction) it goes to
        ``<obj name>/<subresource>``."""
        meta = obj.get("metadata") or {}
        namespace = namespace or meta.get("namespace")
        path = resource.path(namespace, meta["name"], subresource) if subresource else resource.path(namespace)
        params = _params(dryRun="All" if dry_run else None, fieldManager=field_manager)
        return await self.request("POST", path, params, obj)

    async def update(self, resource: ResourceRef, obj: Obj, subresource: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        path = resource.path(meta.get("namespace"), meta["name"], subresource)
        return await self.request("PUT", path, None, obj)

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
    ) -> Obj:
        if patch_type == "apply":
            field_manager = field_manager or DEFAULT_FIELD_MANAGER
        params = _params(fieldManager=field_manager, force=force if patch_type == "apply" else None)
        path = resource.path(namespace, name, subresource)
        # JSON is valid YAML, so an apply body goes out as JSON too.
        return await self.request("PATCH", path, params, patch, PATCH_CONTENT_TYPES[patch_type])

    async def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        body = delete_options_body(propagation_policy, grace_period_seconds, preconditions)
        return await self.request("DELETE", resource.path(namespace, name), None, body)

    async def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[Obj]:
        params = _params(
            watch=True,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            resourceVersion=resource_version,
            allowWatchBookmarks=allow_bookmarks,
            timeoutSeconds=timeout_seconds,
        )
        # No overall deadline: the server ends the stream; only a silent socket is an error.
        read_limit = timeout_seconds + 60 if timeout_seconds else None
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_limit)
        url = self.server + resource.path(namespace)
        async with self._sess().get(url, params=params, headers=self._headers(), timeout=timeout) as resp:
            if resp.status >= 300:
                _decode(resp, await resp.read())
            buffer = b""
            async for chunk in resp.content.iter_any():
                events, buffer = _complete_events(buffer + chunk)
                for event in events:
                    yield event
            if buffer.strip():
                yield _event(orjson.loads(buffer))


def _complete_events(buffer: bytes) -> tuple[list[Obj], bytes]:
    """The watch events of the whole lines in ``buffer`` and what is left of a partial one."""
    *lines, rest = buffer.split(b"\n")
    return [_event(orjson.loads(line)) for line in lines if line.strip()], rest


def _event(event: Obj) -> Obj:
    if event.get("type") == "ERROR":
        obj = event.get("object")
        raise error_from_status(obj, int((obj or {}).get("code") or 500) if isinstance(obj, dict) else 500)
    return event


def _decode(resp: aiohttp.ClientResponse, raw: bytes) -> Obj:
    try:
        body: Any = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = raw.decode(errors="replace")
    if resp.status >= 300:
        headers = {k: v for k, v in resp.headers.items() if k.lower() == "retry-after"}
        raise error_from_status(body, resp.status, headers)
    if not isinstance(body, dict):
        raise error_from_status(body, 500)
    return body

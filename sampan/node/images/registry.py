"""A client for the OCI distribution API (v2): manifests and blobs, with basic and bearer auth."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .refs import DEFAULT_DOMAIN, DOCKER_HUB_ENDPOINT, INDEX_TYPES, MANIFEST_TYPES, ImageError, ImageNotFound, Reference

if TYPE_CHECKING:
    import aiohttp

ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_MAX_MANIFEST = 4 << 20


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class PullError(ImageError):
    """The registry refused or failed a request."""


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def insecure_host(domain: str) -> bool:
    """Loopback registries are spoken to over plain HTTP, like containerd does by default."""
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    host = host.strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class RegistryClient:
    def __init__(self, session: aiohttp.ClientSession, ref: Reference, auth: tuple[str, str] | None = None,
                 insecure: set[str] | None = None) -> None:
        self.session = session
        self.ref = ref
        self.auth = auth
        endpoint = DOCKER_HUB_ENDPOINT if ref.domain == DEFAULT_DOMAIN else ref.domain
        plain = insecure_host(ref.domain) or ref.domain in (insecure or set())
        self.base = f"{'http' if plain else 'https'}://{endpoint}/v2"
        self._authorization: str | None = None
        self._token_lock = asyncio.Lock()

    async def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params.get("realm")
        if not realm:
            raise PullError("registry sent a bearer challenge without a realm")
        query = {k: v for k, v in params.items() if k in ("service", "scope") and v}
        query.setdefault("scope", f"repository:{self.ref.path}:pull")
        headers = {"Authorization": _basic(*self.auth)} if self.auth else {}
        async with self.session.get(realm, params=query, headers=headers) as resp:
            if resp.status in (401, 403):
                raise PullError(f"pull access denied for {self.ref.name}: token server answered {resp.status}")
            if resp.status != 200:
                raise PullError(f"token server {realm} answered {resp.status}")
            body = await resp.json(content_type=None)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise PullError(f"token server {realm} sent no token")
        return str(token)

    async def _authorize(self, resp: aiohttp.ClientResponse) -> bool:
        """Handles a 401 challenge; False when there is nothing more to try."""
        header = resp.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        async with self._token_lock:
            if scheme == "bearer":
                new = "Bearer " + await self._fetch_token(params)
            elif scheme == "basic" and self.auth:
                new = _basic(*self.auth)
            else:
                return False
            if new == self._authorization:
                return False
            self._authorization = new
            return True

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        """Sends a request, answering one auth challenge; the caller releases the response."""
        import aiohttp  # loaded by ImageStore.pull already; not at import (see store.py)

        for _ in range(3):
            hdrs = dict(headers or {})
            if self._authorization:
                hdrs["Authorization"] = self._authorization
            try:
                resp = await self.session.request(method, self.base + path, headers=hdrs)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                raise PullError(f"cannot reach registry {self.ref.domain}: {exc}") from None
            if resp.status != 401:
                return resp
            resp.release()
            if not await self._authorize(resp):
                raise PullError(f"pull access denied for {self.ref.name}: authorization failed")
        raise PullError(f"pull access denied for {self.ref.name}: authorization failed")

    async def ping(self) -> None:
        resp = await self.request("GET", "/")
        resp.release()
        if resp.status >= 400 and resp.status != 404:
            raise PullError(f"registry {self.ref.domain} answered {resp.status} to /v2/")

    async def manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest or index; the digest is computed, not trusted."""
        resp = await self.request("GET", f"/{self.ref.path}/manifests/{reference}", {"Accept": ACCEPT})
        async with resp:
            if resp.status == 404:
                raise ImageNotFound(f"{self.ref.name}:{reference}: manifest unknown")
            if resp.status != 200:
                raise PullError(f"registry answered {resp.status} for manifest {self.ref.name}:{reference}")
            body = await resp.content.read(_MAX_MANIFEST + 1)
            if len(body) > _MAX_MANIFEST:
                raise PullError("manifest too large")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ImageError(f"manifest digest mismatch: wanted {reference}, got {digest}")
        return body, media_type, digest

    async def blob(self, digest: str, dest: Path, size: int | None = None) -> None:
        """Streams a blob to ``dest`` while hashing it; ImageError when the digest does not match."""
        import aiohttp

        resp = await self.request("GET", f"/{self.ref.path}/blobs/{digest}")
        sha = hashlib.sha256()
        count = 0
        try:
            async with resp:
                if resp.status == 404:
                    raise ImageError(f"blob {digest} unknown to the registry")
                if resp.status != 200:
                    raise PullError(f"registry answered {resp.status} for blob {digest}")
                fd = await asyncio.to_thread(os.open, dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        sha.update(chunk)
                        count += len(chunk)
                        if size is not None and count > size:
                            raise ImageError(f"blob {digest} is larger than its descriptor says ({size} bytes)")
                        await asyncio.to_thread(_write_all, fd, chunk)
                finally:
                    await asyncio.to_thread(os.close, fd)
        except aiohttp.ClientError as exc:
            raise PullError(f"download of blob {digest} failed: {exc}") from None
        got = "sha256:" + sha.hexdigest()
        if got != digest:
            raise ImageError(f"digest mismatch for blob: wanted {digest}, got {got}")
        if size is not None and count != size:
            raise ImageError(f"size mismatch for blob {digest}: wanted {size}, got {count}")

    async def blob_bytes(self, digest: str, limit: int = 16 << 20) -> bytes:
        resp = await self.request("GET", f"/{self.ref.path}/blobs/{digest}")
        async with resp:
            if resp.status != 200:
                raise PullError(f"registry answered {resp.status} for blob {digest}")
            body = await resp.content.read(limit + 1)
        if len(body) > limit:
            raise ImageError(f"blob {digest} too large")
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != digest:
            raise ImageError(f"digest mismatch for blob: wanted {digest}, got {got}")
        return body

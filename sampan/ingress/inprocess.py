"""Data path: an aiohttp reverse proxy inside this process (no nginx needed).

Slower than nginx (see BENCHMARKS.md) but dependency-free; routing is the same model.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from sampan.ingress.model import Model
from sampan.ingress.nginx import self_signed_pem, write_private

log = logging.getLogger(__name__)

# RFC 9110 7.6.1: connection-specific headers are not forwarded.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-connection", "host", "content-length",
}


def _context(pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain only reads files: use a private temporary file, removed at once.
    with tempfile.NamedTemporaryFile() as f:
        f.write(pem)
        f.flush()
        ctx.load_cert_chain(f.name)
    return ctx


class InProcessDataPath:
    def __init__(self, prefix: Path, bind_address: str, http_port: int, https_port: int) -> None:
        self.prefix = prefix
        self.bind_address = bind_address or "0.0.0.0"
        self.http_port, self.https_port = http_port, https_port
        self.model = Model()
        self._rr: dict[str, itertools.cycle[str]] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._default_ctx: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._web: web.Server | None = None

    async def start(self) -> None:
        default = self.prefix / "certs" / "default.pem"
        if not default.exists():
            write_private(default, await asyncio.to_thread(self_signed_pem))
        self._default_ctx = _context(default.read_bytes())
        self._default_ctx.sni_callback = self._sni
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=256, ttl_dns_cache=None),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._web = web.Server(self._handle, access_log=None)
        loop = asyncio.get_running_loop()
        self._servers = [
            await loop.create_server(self._web, self.bind_address, self.http_port, reuse_address=True),
            await loop.create_server(
                self._web, self.bind_address, self.https_port, ssl=self._default_ctx, reuse_address=True
            ),
        ]

    async def apply(self, model: Model) -> None:
        contexts = {}
        for key, (crt, pem) in model.certificates.items():
            contexts[key] = self._contexts.get(key) or _context(crt.rstrip(b"\n") + b"\n" + pem)
        self._contexts = contexts
        self._rr = {k: itertools.cycle(v) for k, v in model.upstreams.items() if v}
        self.model = model

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        if self._web is not None:
            await self._web.shutdown(1.0)
        for server in self._servers:
            await server.wait_closed()
        self._servers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        if not name:
            return
        secret = self.model.server_for(name).tls_secret
        chosen = self._contexts.get(secret) if secret else None
        if chosen is not None:
            sock.context = chosen

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        upstream = self.model.route(host, request.path)
        if upstream is None:
            return web.Response(status=404, text="404 page not found\n")
        servers = self._rr.get(upstream)
        if servers is None:
            return web.Response(status=503, text="503 service unavailable\n")
        target = next(servers)
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers["Host"] = request.host
        headers["X-Real-IP"] = peer
        headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = host
        assert self._session is not None
        body = request.content if request.body_exists else None
        try:
            async with self._session.request(
                request.method, f"http://{target}{request.raw_path}", headers=headers, data=body,
                allow_redirects=False,
            ) as upstream_resp:
                resp = web.StreamResponse(status=upstream_resp.status, reason=upstream_resp.reason)
                for k, v in upstream_resp.headers.items():
                    if k.lower() not in HOP_BY_HOP:
                        resp.headers.add(k, v)
                if upstream_resp.content_length is not None:
                    resp.content_length = upstream_resp.content_length
                await resp.prepare(request)
                async for chunk in upstream_resp.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            log.debug("upstream %s failed: %s", target, exc)
            return web.Response(status=502, text="502 bad gateway\n")

"""Data path: a generated nginx.conf served by Debian's nginx (as ingress-nginx does)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sampan.ingress.model import Model
from sampan.ingress.nginx import NginxProcess, self_signed_pem, write_private
from sampan.ingress.nginxconf import Listen, cert_file_name, render

log = logging.getLogger(__name__)


class NginxDataPath:
    def __init__(self, prefix: Path, bind_address: str, http_port: int, https_port: int) -> None:
        self.prefix = prefix
        self.listen = Listen(bind_address, http_port, https_port)
        self.process = NginxProcess(prefix)
        self.default_cert = prefix / "certs" / "default.pem"
        self.applied: str | None = None
        self.reloads = 0  # config changes applied (first start included)

    async def start(self) -> None:
        if not self.default_cert.exists():
            pem = await asyncio.to_thread(self_signed_pem)
            write_private(self.default_cert, pem)

    def _write_certs(self, model: Model) -> None:
        certs = self.prefix / "certs"
        keep = {self.default_cert.name}
        for secret_key, (crt, key) in model.certificates.items():
            name = cert_file_name(secret_key, crt, key)
            keep.add(name)
            path = certs / name
            if not path.exists():
                write_private(path, crt.rstrip(b"\n") + b"\n" + key)
        for stale in certs.glob("*.pem"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    async def apply(self, model: Model) -> None:
        text = render(model, self.listen, self.prefix, self.default_cert)
        if text == self.applied and self.process.running:
            return
        # Certificates first: the config that names them is tested before nginx sees it.
        self._write_certs(model)
        if await self.process.apply(text):
            self.applied = text
            self.reloads += 1

    async def stop(self) -> None:
        await self.process.stop()

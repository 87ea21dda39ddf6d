"""Run Debian's nginx as a child process with its own prefix, config and pid file."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import signal
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

NGINX = "nginx"
NGINX_SBIN = "/usr/sbin/nginx"  # not on PATH for non-root users


def nginx_binary() -> str | None:
    return shutil.which(NGINX) or (NGINX_SBIN if Path(NGINX_SBIN).exists() else None)


def write_private(path: Path, data: bytes) -> None:
    """Write a key-bearing file 0600 from the start (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def self_signed_pem(
    common_name: str = "Sampan Ingress Fake Certificate", dns_names: list[str] | None = None
) -> bytes:
    """Certificate + key in one PEM, for requests whose SNI matches no Ingress TLS host."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names or ["ingress.local"]]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key_pem


class NginxProcess:
    """nginx in the foreground (daemon off) as our child; reload = SIGHUP after `nginx -t`."""

    def __init__(self, prefix: Path, binary: str | None = None) -> None:
        self.prefix = prefix
        self.conf = prefix / "nginx.conf"
        self.binary = binary or nginx_binary() or NGINX
        self.proc: asyncio.subprocess.Process | None = None

    def _args(self, conf: Path) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log")]

    async def test(self, conf: Path) -> tuple[bool, str]:
        proc = await asyncio.create_subprocess_exec(
            *self._args(conf), "-t", "-q", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        return proc.returncode == 0, out.decode(errors="replace")

    async def apply(self, text: str) -> bool:
        """Test a new config, then swap it in and start or reload nginx; False if it was rejected."""
        for sub in ("tmp", "certs"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        candidate = self.prefix / "nginx.conf.new"
        candidate.write_text(text)
        ok, output = await self.test(candidate)
        if not ok:
            log.error("generated nginx config rejected: %s", output.strip())
            return False
        os.replace(candidate, self.conf)
        if self.proc is None or self.proc.returncode is not None:
            await self._start()
        else:
            await self._signal_reload()
        return True

    async def _start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self._args(self.conf), stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        # nginx writes its pid file only after it has bound every listening socket, so once
        # it holds our child's pid, requests can be served.
        pid_file = self.prefix / "nginx.pid"
        for _ in range(200):
            if self.proc.returncode is not None:
                code = self.proc.returncode
                raise RuntimeError(f"nginx exited at start with code {code}; see {self.prefix}/error.log")
            try:
                if int(pid_file.read_text().strip() or 0) == self.proc.pid:
                    break
            except (OSError, ValueError):
                pass
            await asyncio.sleep(0.025)
        log.info("nginx started (pid %s)", self.proc.pid)

    async def _signal_reload(self) -> None:
        # Same as `nginx -s reload`, but by the pid we own rather than the pid file.
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGQUIT)  # graceful: finish in-flight requests
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            # nginx's workers share its session: end the whole group it leads.
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

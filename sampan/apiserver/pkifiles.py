"""The cluster PKI as files, for the server process.

Creating or checking certificates needs the ``cryptography`` package (about 10 MB of
memory once imported). The server only needs the files themselves (TLS, kubeconfig),
so :func:`ensure_pki_files` runs :func:`sampan.apiserver.pki.ensure_pki` in a short-lived
child process and returns paths; keys are loaded in this process only when something
(a TokenRequest, a non-admin kubeconfig) actually needs them.

The child leaves a stamp of what it checked (the requested names, each file's size,
mtime and inode, and when the first certificate needs renewing). A restart whose request
and files match the stamp, before that time, skips the child.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
STAMP = "checked.json"
PKI_FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "admin.crt", "admin.key", "sa.key", "sa.pub")
# Children started by prestart(), by (tls_dir, hostnames, ips).
_prestarted: dict[tuple[str, tuple[str, ...], tuple[str, ...]], subprocess.Popen[bytes]] = {}


def certificate_names(bind_address: str, service_cidr: str, extra_hostnames: list[str]) -> tuple[list[str], list[str]]:
    """The host names and IPs the serving certificate must cover."""
    hostnames = [
        "localhost",
        socket.gethostname(),
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        *extra_hostnames,
    ]
    first_service_ip = str(next(ipaddress.ip_network(service_cidr, strict=False).hosts()))
    ips = ["127.0.0.1", "::1", first_service_ip]
    if bind_address not in ("0.0.0.0", "::", "", "localhost"):
        ips.append(bind_address)
    return hostnames, ips


@dataclass
class PkiPaths:
    """Where the PKI files live under ``tls_dir``."""

    tls_dir: Path

    @property
    def ca_cert_path(self) -> Path:
        return self.tls_dir / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.tls_dir / "ca.key"

    @property
    def server_cert_path(self) -> Path:
        return self.tls_dir / "server.crt"

    @property
    def server_key_path(self) -> Path:
        return self.tls_dir / "server.key"

    @property
    def admin_cert_path(self) -> Path:
        return self.tls_dir / "admin.crt"

    @property
    def admin_key_path(self) -> Path:
        return self.tls_dir / "admin.key"

    @property
    def sa_key_path(self) -> Path:
        return self.tls_dir / "sa.key"

    @property
    def sa_pub_path(self) -> Path:
        return self.tls_dir / "sa.pub"


class PkiFiles(PkiPaths):
    """A :class:`sampan.apiserver.pki.Pki` look-alike whose keys load on first use."""

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert_path.read_bytes()

    @functools.cached_property
    def ca_cert(self) -> Any:
        from sampan.apiserver import pki

        return _required(pki._load_cert(self.ca_cert_path), self.ca_cert_path)

    @functools.cached_property
    def ca_key(self) -> Any:
        from sampan.apiserver import pki

        return _required(pki._load_key(self.ca_key_path), self.ca_key_path)

    @functools.cached_property
    def sa_key(self) -> Any:
        from sampan.apiserver import pki

        return _required(pki._load_key(self.sa_key_path), self.sa_key_path)

    @property
    def sa_public_key(self) -> Any:
        return self.sa_key.public_key()


def _required(value: Any, path: Path) -> Any:
    if value is None:
        raise RuntimeError(f"cannot load {path}")
    return value


def _file_states(tls_dir: Path) -> dict[str, list[int]] | None:
    states = {}
    for name in PKI_FILES:
        try:
            st = (tls_dir / name).stat()
        except OSError:
            return None
        states[name] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return states


def write_stamp(tls_dir: Path, hostnames: list[str], ips: list[str], renew_after: float) -> None:
    """Records a successful check (called by the child after ``ensure_pki``)."""
    stamp = {"hostnames": hostnames, "ips": ips, "files": _file_states(tls_dir), "renew_after": renew_after}
    write_private(tls_dir / STAMP, json.dumps(stamp).encode(), 0o600)


def _stamp_matches(tls_dir: Path, hostnames: list[str], ips: list[str]) -> bool:
    try:
        stamp = json.loads((tls_dir / STAMP).read_bytes())
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("hostnames") == hostnames
        and stamp.get("ips") == ips
        and stamp.get("files") == _file_states(tls_dir)
        and isinstance(stamp.get("renew_after"), (int, float))
        and time.time() < stamp["renew_after"]
    )


def _child_command(tls_dir: Path, hostnames: list[str], ips: list[str]) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    args = [sys.executable, "-m", "sampan.apiserver.pki", json.dumps([str(tls_dir), list(hostnames), list(ips)])]
    return args, env


def prestart(tls_dir: Path, hostnames: list[str], ips: list[str]) -> None:
    """Starts the check now (``sampan server`` does, before importing the server), so it
    runs alongside the imports; :func:`ensure_pki_files` with the same arguments adopts it."""
    tls_dir = Path(tls_dir)
    key = (str(tls_dir), tuple(hostnames), tuple(ips))
    if key in _prestarted or _stamp_matches(tls_dir, list(hostnames), list(ips)):
        return
    args, env = _child_command(tls_dir, hostnames, ips)
    _prestarted[key] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


async def ensure_pki_files(tls_dir: Path, hostnames: list[str], ips: list[str]) -> PkiFiles:
    """Creates or renews the PKI under ``tls_dir`` in a child process (see the module doc)."""
    import asyncio  # here, not at the top: the child process itself has no use for it

    tls_dir = Path(tls_dir)
    early = _prestarted.pop((str(tls_dir), tuple(hostnames), tuple(ips)), None)
    if early is not None:
        _, stderr = await asyncio.to_thread(early.communicate)
        returncode = early.returncode
    elif _stamp_matches(tls_dir, list(hostnames), list(ips)):
        return PkiFiles(tls_dir)
    else:
        args, env = _child_command(tls_dir, hostnames, ips)
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
        )
        try:
            _, stderr = await proc.communicate()
        finally:
            if proc.returncode is None:  # cancelled: do not leave the child behind
                proc.kill()
                await proc.wait()
        returncode = proc.returncode
    if returncode != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"creating the cluster PKI in {tls_dir} failed: {detail[-1] if detail else returncode}")
    return PkiFiles(Path(tls_dir))


def server_ssl_context(pki: PkiPaths) -> ssl.SSLContext:
    """TLS for the API server: client certs are checked against the cluster CA (and
    only it) when sent, but not required, so bearer tokens and anonymous requests
    still get through."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_cert_path, pki.server_key_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # HTTP/1.1 only: exec/attach/port-forward upgrades need it (see kubectl-compat §0).
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def write_private(path: Path, data: bytes, mode: int) -> None:
    # Write to a private temp file first so a key is never readable by others,
    # not even for a moment, and a crash never leaves half a file.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_kubeconfig(path: Path, server_url: str, pki: Any, user: str = "admin") -> None:
    """Write a kubeconfig with embedded CA and client credentials (mode 0600).

    ``user="admin"`` uses the admin certificate (system:admin in system:masters);
    any other name gets a fresh certificate for that user with no groups.
    """
    import yaml  # after start-up: the kubeconfig is written once the server is ready

    if user == "admin":
        cert_pem, key_pem = pki.admin_cert_path.read_bytes(), pki.admin_key_path.read_bytes()
    else:
        from sampan.apiserver.pki import LEAF_DAYS, issue_client_certificate

        cert_pem, key_pem = issue_client_certificate(pki, user, [], LEAF_DAYS)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "sampan", "cluster": {"server": server_url, "certificate-authority-data": b64(pki.ca_pem)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}
        ],
        "contexts": [{"name": "sampan", "context": {"cluster": "sampan", "user": user}}],
        "current-context": "sampan",
        "preferences": {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)

"""The remote agent's serving certificate, signed by the cluster CA (the kubelet-serving flow).

The key is made here and never leaves the node; the server signs a CSR for
``CN=system:node:<name>, O=system:nodes`` naming the node and its address (see
sampan/apiserver/nodecerts.py). Certificate and key are kept under the agent's data dir and
reused across restarts; they are requested again when the names changed, when most of the
lifetime has passed, or when what is stored is not a CA-signed node certificate (e.g. the
self-signed one older agents made).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sampan.apiserver.nodecerts import NODE_GROUP, NODE_USER_PREFIX, SIGN_PATH, SIGNER, USAGES
from sampan.apiserver.pkifiles import write_private
from sampan.node import subcall

log = logging.getLogger(__name__)
Obj = dict[str, Any]
RENEW_AT = 0.8  # of the lifetime: like the kubelet, renew well before expiry
RETRY_SECONDS = 30.0


@dataclass
class ServingCert:
    cert_path: Path
    key_path: Path
    renew_at: dt.datetime


def _split(names: list[str]) -> tuple[list[str], list[Any]]:
    dns, ips = [], []
    for n in dict.fromkeys(names):
        try:
            ips.append(ipaddress.ip_address(n))
        except ValueError:
            dns.append(n)
    return dns, ips


def _renew_at(cert: Any, fraction: float | None = None) -> dt.datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * (RENEW_AT if fraction is None else fraction)


def stored(directory: Path, node: str, names: list[str], fraction: float | None = None) -> ServingCert | None:
    """The kept certificate if it is a CA-issued one for this node, its names and key, and not due."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    dns, ips = _split(names)
    if (cert.issuer == cert.subject  # self-signed: made by an agent before the cluster CA signed them
            or cns != [NODE_USER_PREFIX + node]
            or set(san.get_values_for_type(x509.DNSName)) != set(dns)
            or set(san.get_values_for_type(x509.IPAddress)) != set(ips)
            or cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        return None
    renew = _renew_at(cert, fraction)
    return ServingCert(cert_path, key_path, renew) if dt.datetime.now(dt.timezone.utc) < renew else None


def make_request(node: str, names: list[str]) -> tuple[bytes, Obj]:
    """A fresh key (PEM) and the request object asking the server to sign it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = _split(names)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODE_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, NODE_USER_PREFIX + node)])
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns] + [x509.IPAddress(i) for i in ips]
    csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": NODE_USER_PREFIX + node},
            "spec": {"request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
                     "signerName": SIGNER, "usages": list(USAGES)}}
    return key_pem, body


def _save(directory: Path, key_pem: bytes, cert_pem: bytes, fraction: float | None = None) -> ServingCert:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)  # what the server sent must at least parse
    directory.mkdir(parents=True, exist_ok=True)
    # Key first: a crash in between leaves a mismatch, which stored() treats as "request again".
    write_private(directory / "kubelet.key", key_pem, 0o600)
    write_private(directory / "kubelet.crt", cert_pem, 0o644)
    return ServingCert(directory / "kubelet.crt", directory / "kubelet.key", _renew_at(cert, fraction))


async def request_certificate(client: Any, directory: Path, node: str, names: list[str]) -> ServingCert:
    """Asks the server to sign a new key (one attempt; raises what the server answered)."""
    # cryptography runs in child processes: imported here it would stay in the agent's memory (~8 MB).
    key_pem, body = await subcall.call(f"{__name__}:make_request", node, names)
    reply = await client.request("POST", SIGN_PATH, None, body)
    cert_pem = base64.b64decode(((reply or {}).get("status") or {}).get("certificate") or "")
    saved: ServingCert = await subcall.call(f"{__name__}:_save", directory, key_pem, cert_pem, RENEW_AT)
    return saved


def _retryable(exc: Exception) -> bool:
    code = getattr(exc, "code", None)
    return not isinstance(code, int) or code >= 500 or code == 429


async def ensure(client: Any, directory: Path, node: str, names: list[str]) -> ServingCert:
    """The kept certificate, or a new one (retried while the server is out of reach)."""
    found = None
    if (directory / "kubelet.crt").exists():  # a first start has nothing to check (in a child, see above)
        found = await subcall.call(f"{__name__}:stored", directory, node, names, RENEW_AT)
    delay = 1.0
    while found is None:
        try:
            found = await request_certificate(client, directory, node, names)
        except Exception as exc:
            if not _retryable(exc):
                raise  # refused (403/422): retrying would not change the answer
            log.warning("getting the serving certificate signed failed (retrying in %.0fs): %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_SECONDS)
    return found


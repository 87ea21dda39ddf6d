"""The cluster's certificates and keys: CA, serving cert, admin cert, SA signing key.

Everything is created on first start under ``tls_dir`` and reused afterwards.
The serving certificate is re-issued when the requested host names or IPs are
no longer covered, when it nears expiry, or when the CA changed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The server process uses these without importing this module (no cryptography there).
from sampan.apiserver.pkifiles import PkiPaths, server_ssl_context, write_kubeconfig, write_stamp
from sampan.apiserver.pkifiles import write_private as _write

__all__ = ["Pki", "ensure_pki", "issue_client_certificate", "server_ssl_context", "write_kubeconfig"]

CA_DAYS = 3650
LEAF_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)
# Names every in-cluster client may use for the API server.
CLUSTER_NAMES = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]
ADMIN_USER = "system:admin"
ADMIN_GROUPS = ["system:masters"]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class Pki(PkiPaths):
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    sa_key: rsa.RSAPrivateKey

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def sa_public_key(self) -> rsa.RSAPublicKey:
        return self.sa_key.public_key()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations or []]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _create_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_ec_key()
    now = _now()
    name = _name(f"sampan-ca@{int(now.timestamp())}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    pki_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    days: int,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = pki_ca
    key = _new_ec_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _sans(hostnames: list[str], ips: list[str]) -> tuple[set[str], set[ipaddress._BaseAddress]]:
    names = set(CLUSTER_NAMES) | {h for h in hostnames if h}
    addrs = {ipaddress.ip_address("127.0.0.1")} | {ipaddress.ip_address(i) for i in ips if i}
    # A host name that is really an IP literal belongs with the IPs.
    for h in list(names):
        try:
            addrs.add(ipaddress.ip_address(h))
            names.discard(h)
        except ValueError:
            pass
    return names, addrs


def _covers(cert: x509.Certificate, names: set[str], addrs: set) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return names <= set(san.get_values_for_type(x509.DNSName)) and addrs <= set(
        san.get_values_for_type(x509.IPAddress)
    )


def _fresh(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Issued by this CA and not close to expiry."""
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):  # signature, issuer or key type mismatch
        return False
    return cert.not_valid_after_utc - _now() > RENEW_BEFORE


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _load_key(path: Path) -> PrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)) else None


def _matches(cert: x509.Certificate, key: PrivateKey | None) -> bool:
    if key is None:
        return False
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(serialization.Encoding.DER, pub) == key.public_key().public_bytes(
        serialization.Encoding.DER, pub
    )


def _ensure_ca(tls_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = _load_cert(tls_dir / "ca.crt")
    key = _load_key(tls_dir / "ca.key")
    if cert is not None and isinstance(key, ec.EllipticCurvePrivateKey) and _matches(cert, key):
        return cert, key
    cert, key = _create_ca()
    _write(tls_dir / "ca.key", _key_pem(key), 0o600)
    _write(tls_dir / "ca.crt", _cert_pem(cert), 0o644)
    return cert, key


def _ensure_sa_key(tls_dir: Path) -> rsa.RSAPrivateKey:
    key = _load_key(tls_dir / "sa.key")
    if not isinstance(key, rsa.RSAPrivateKey):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(tls_dir / "sa.key", _key_pem(key), 0o600)
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not (tls_dir / "sa.pub").exists() or (tls_dir / "sa.pub").read_bytes() != pub:
        _write(tls_dir / "sa.pub", pub, 0o644)
    return key


def ensure_pki(tls_dir: Path, hostnames: list[str], ips: list[str]) -> Pki:
    """Create or reuse the cluster PKI under ``tls_dir``."""
    tls_dir = Path(tls_dir)
    tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o700)
    ca = _ensure_ca(tls_dir)
    pki = Pki(tls_dir=tls_dir, ca_cert=ca[0], ca_key=ca[1], sa_key=_ensure_sa_key(tls_dir))

    names, addrs = _sans(hostnames, ips)
    server = _load_cert(pki.server_cert_path)
    if not (
        server is not None
        and _fresh(server, ca[0])
        and _covers(server, names, addrs)
        and _matches(server, _load_key(pki.server_key_path))
    ):
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(names)]
        sans += [x509.IPAddress(a) for a in sorted(addrs, key=str)]
        cert, key = _issue(ca, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, LEAF_DAYS, sans)
        _write(pki.server_key_path, _key_pem(key), 0o600)
        _write(pki.server_cert_path, _cert_pem(cert), 0o644)

    admin = _load_cert(pki.admin_cert_path)
    if not (admin is not None and _fresh(admin, ca[0]) and _matches(admin, _load_key(pki.admin_key_path))):
        cert_pem, key_pem = issue_client_certificate(pki, ADMIN_USER, ADMIN_GROUPS, LEAF_DAYS)
        _write(pki.admin_key_path, key_pem, 0o600)
        _write(pki.admin_cert_path, cert_pem, 0o644)
    return pki


def issue_client_certificate(pki: Pki, user: str, groups: list[str], days: int) -> tuple[bytes, bytes]:
    """A client certificate for ``user`` (CN) in ``groups`` (O); returns PEM (cert, key)."""
    cert, key = _issue(
        (pki.ca_cert, pki.ca_key), _name(user, groups), ExtendedKeyUsageOID.CLIENT_AUTH, days
    )
    return _cert_pem(cert), _key_pem(key)


def main() -> None:
    """``python -m sampan.apiserver.pki '[tls_dir, hostnames, ips]'`` (used by pkifiles)."""
    tls_dir, hostnames, ips = json.loads(sys.argv[1])
    pki = ensure_pki(Path(tls_dir), hostnames, ips)
    leaves = [_load_cert(pki.server_cert_path), _load_cert(pki.admin_cert_path)]
    expiry = min(cert.not_valid_after_utc for cert in leaves if cert is not None)
    write_stamp(pki.tls_dir, hostnames, ips, (expiry - RENEW_BEFORE).timestamp())


if __name__ == "__main__":
    main()

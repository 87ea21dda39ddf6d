"""The agent's serving certificate: requested from a real server with the join token, kept in
the data dir and reused across restarts, requested again when names change, when it is due,
or when an older agent left a self-signed one behind."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sampan.api.errors import APIError
from sampan.client.http import HttpClient
from sampan.node import servingcert
from sampan.node.runner import read_join_token
from sampan.server import RunningServer, ServerOptions, start_server


@pytest.fixture
async def joiner(tmp_path: Path) -> AsyncIterator[HttpClient]:
    server: RunningServer = await start_server(ServerOptions(data_dir=tmp_path / "srv", port=0, datastore="memory",
                                                             scheduler=False, controllers=[]))
    ctx = ssl.create_default_context(cafile=str(tmp_path / "srv" / "server" / "tls" / "ca.crt"))
    try:
        async with HttpClient(server.url, ctx, token=read_join_token(tmp_path / "srv")) as client:
            yield client
    finally:
        await server.stop()


def _ca(tmp_path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((tmp_path / "srv" / "server" / "tls" / "ca.crt").read_bytes())


async def test_kept_across_restarts_and_renewed_when_names_change(joiner: HttpClient, tmp_path: Path) -> None:
    d = tmp_path / "serving"
    first = await servingcert.ensure(joiner, d, "n1", ["n1", "127.0.0.1"])
    pem, key = first.cert_path.read_bytes(), first.key_path.read_bytes()
    x509.load_pem_x509_certificate(pem).verify_directly_issued_by(_ca(tmp_path))
    assert first.key_path.stat().st_mode & 0o777 == 0o600
    # A restart with the same names: the same certificate and key, nothing asked.
    again = await servingcert.ensure(joiner, d, "n1", ["n1", "127.0.0.1"])
    assert again.cert_path.read_bytes() == pem and again.key_path.read_bytes() == key
    # The node's names changed (here: the address left out): a new key and certificate.
    changed = await servingcert.ensure(joiner, d, "n1", ["n1"])
    cert = x509.load_pem_x509_certificate(changed.cert_path.read_bytes())
    assert changed.key_path.read_bytes() != key
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.IPAddress) == []


async def test_due_certificate_is_renewed(joiner: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "serving"
    first = await servingcert.ensure(joiner, d, "n1", ["n1"])
    assert first.renew_at > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=200)
    pem = first.cert_path.read_bytes()
    monkeypatch.setattr(servingcert, "RENEW_AT", 0.0)  # every certificate is due now
    renewed = await servingcert.ensure(joiner, d, "n1", ["n1"])
    assert renewed.cert_path.read_bytes() != pem


async def test_self_signed_certificate_of_an_older_agent_is_replaced(joiner: HttpClient, tmp_path: Path) -> None:
    d = tmp_path / "serving"
    d.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n1@sampan-agent")])
    now = dt.datetime.now(dt.timezone.utc)
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("n1")]), critical=False)
           .sign(key, hashes.SHA256()))
    (d / "kubelet.crt").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    (d / "kubelet.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    found = await servingcert.ensure(joiner, d, "n1", ["n1"])
    x509.load_pem_x509_certificate(found.cert_path.read_bytes()).verify_directly_issued_by(_ca(tmp_path))


async def test_refusal_is_not_retried(joiner: HttpClient, tmp_path: Path) -> None:
    with pytest.raises(APIError) as caught:
        await servingcert.ensure(joiner, tmp_path / "serving", "n1", ["n1", "198.18.0.9"])
    assert caught.value.code == 403
    assert not (tmp_path / "serving" / "kubelet.key").exists()  # nothing kept from a refused request

"""Node serving certificates signed by the cluster CA: who may ask, for which names, and what
comes back (a real server; requests over HTTPS with the join token or client certificates)."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sampan.api.errors import APIError
from sampan.apiserver.authn import UserInfo
from sampan.apiserver.nodecerts import SIGN_PATH, authorize
from sampan.client.http import HttpClient
from sampan.client.interface import NODES
from sampan.client.local import LocalClient
from sampan.node.runner import read_join_token
from sampan.node.servingcert import make_request
from sampan.server import RunningServer, ServerOptions, start_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(ServerOptions(data_dir=tmp_path, port=0, datastore="memory", scheduler=False,
                                               controllers=[], agent=False))
    yield running
    await running.stop()


def _tls(tmp_path: Path) -> Path:
    return tmp_path / "server" / "tls"


@pytest.fixture
async def joiner(server: RunningServer, tmp_path: Path) -> AsyncIterator[HttpClient]:
    """What a joining agent holds: the join token."""
    ctx = ssl.create_default_context(cafile=str(_tls(tmp_path) / "ca.crt"))
    async with HttpClient(server.url, ctx, token=read_join_token(tmp_path)) as client:
        yield client


def _cert_client(server: RunningServer, tmp_path: Path, user: str, groups: list[str]) -> HttpClient:
    from sampan.apiserver.pkifiles import PkiFiles
    from sampan.apiserver.pki import issue_client_certificate

    cert, key = issue_client_certificate(PkiFiles(_tls(tmp_path)), user, groups, 1)  # type: ignore[arg-type]
    (tmp_path / "u.crt").write_bytes(cert)
    (tmp_path / "u.key").write_bytes(key)
    ctx = ssl.create_default_context(cafile=str(_tls(tmp_path) / "ca.crt"))
    ctx.load_cert_chain(str(tmp_path / "u.crt"), str(tmp_path / "u.key"))
    return HttpClient(server.url, ctx)


async def _refusal(client: HttpClient, body: Any) -> dict[str, Any]:
    with pytest.raises(APIError) as caught:
        await client.request("POST", SIGN_PATH, None, body)
    return caught.value.status


def _custom_request(subject: x509.Name, sans: list[x509.GeneralName]) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(key, hashes.SHA256()))
    return {"spec": {"request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
                     "signerName": "kubernetes.io/kubelet-serving"}}


async def test_join_token_gets_a_ca_signed_node_certificate(joiner: HttpClient, tmp_path: Path) -> None:
    key_pem, body = make_request("n1", ["n1", "127.0.0.1"])
    reply = await joiner.request("POST", SIGN_PATH, None, body)
    assert reply["kind"] == "CertificateSigningRequest" and reply["metadata"]["name"] == "system:node:n1"
    assert [c["type"] for c in reply["status"]["conditions"]] == ["Approved"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(reply["status"]["certificate"]))
    ca = x509.load_pem_x509_certificate((_tls(tmp_path) / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["n1"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=365, minutes=5)
    assert b"PRIVATE KEY" not in str(body).encode()  # only the CSR travels


async def test_names_that_are_not_the_nodes_are_forbidden(joiner: HttpClient, server: RunningServer) -> None:
    # No Node yet: only its name and the address the request comes from (127.0.0.1 here).
    for names, bad in ((["n1", "198.18.0.9"], "IP address 198.18.0.9"), (["n1", "other"], 'DNS name "other"'),
                       (["127.0.0.1"], 'node name "n1" must be one of the names')):
        status = await _refusal(joiner, make_request("n1", names)[1])
        assert status["code"] == 403 and status["reason"] == "Forbidden", status
        assert bad in status["message"]
        causes = status["details"]["causes"]
        assert causes and all(c["field"] == "spec.request" and c["reason"] == "FieldValueForbidden" for c in causes)
    # Once the Node exists, its own addresses are fine too (not another's).
    await LocalClient(server.registry).create(NODES, {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.7"}]}})
    reply = await joiner.request("POST", SIGN_PATH, None, make_request("n1", ["n1", "198.18.0.7"])[1])
    assert reply["status"]["certificate"]
    status = await _refusal(joiner, make_request("n1", ["n1", "198.18.0.8"])[1])
    assert status["code"] == 403 and "198.18.0.8" in status["message"]

async def test_no_node_may_carry_the_api_servers_name(joiner: HttpClient) -> None:
    # Joining agents verify the server as kubernetes.default.svc: a node of that name must not exist.
    for name in ("kubernetes.default.svc", "kubernetes"):
        status = await _refusal(joiner, make_request(name, [name])[1])
        assert status["code"] == 403 and "is a name of the API server" in status["message"], status


async def test_malformed_requests_are_invalid(joiner: HttpClient) -> None:
    good = make_request("n1", ["n1"])[1]
    cases = [
        ({"spec": {**good["spec"], "signerName": "kubernetes.io/kube-apiserver-client"}}, "spec.signerName",
         "FieldValueNotSupported"),
        ({"spec": {**good["spec"], "usages": ["client auth"]}}, "spec.usages", "FieldValueInvalid"),
        ({"spec": {**good["spec"], "request": "bm90IGEgY3Ny"}}, "spec.request", "FieldValueInvalid"),
        (_custom_request(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n1")]), [x509.DNSName("n1")]),
         "spec.request", "FieldValueInvalid"),
        (_custom_request(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n1")]),
                         [x509.DNSName("n1")]), "spec.request", "FieldValueInvalid"),
    ]
    for body, field, reason in cases:
        status = await _refusal(joiner, body)
        assert status["code"] == 422 and status["reason"] == "Invalid", status
        assert status["details"]["kind"] == "CertificateSigningRequest"
        assert status["details"]["causes"][0]["field"] == field and status["details"]["causes"][0]["reason"] == reason
    # Not even an object: a plain bad request.
    resp = await joiner._sess().post(joiner.server + SIGN_PATH, data=b"[1,", headers=joiner._headers("text/plain"))
    async with resp:
        assert resp.status == 400 and (await resp.json())["reason"] == "BadRequest"


async def test_only_nodes_get_node_certificates(server: RunningServer, tmp_path: Path) -> None:
    async with _cert_client(server, tmp_path, "alice", ["developers"]) as alice:
        status = await _refusal(alice, make_request("n1", ["n1"])[1])
        assert status["code"] == 403 and 'user "alice" is not a node' in status["message"]
    # A node's own identity: only for itself.
    async with _cert_client(server, tmp_path, "system:node:n1", ["system:nodes"]) as n1:
        status = await _refusal(n1, make_request("n2", ["n2"])[1])
        assert status["code"] == 403 and "only request a certificate for itself" in status["message"]
        assert (await n1.request("POST", SIGN_PATH, None, make_request("n1", ["n1"])[1]))["status"]["certificate"]


def test_authorize_rules() -> None:
    authorize(UserInfo("system:admin", groups=["system:masters"]), "any")
    authorize(UserInfo("system:node-join", groups=["system:nodes", "system:bootstrappers"]), "any")
    authorize(UserInfo("system:node:a", groups=["system:nodes"]), "a")
    for user, node in ((UserInfo("system:node:a", groups=["system:nodes"]), "b"),
                       (UserInfo("system:serviceaccount:default:x", groups=["system:serviceaccounts"]), "a")):
        with pytest.raises(APIError) as caught:
            authorize(user, node)
        assert caught.value.code == 403

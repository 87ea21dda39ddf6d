"""Authentication over real TLS: aiohttp server, Python clients and the real kubectl."""

import asyncio
import base64
import json
import os
import shutil
import ssl
import time

import aiohttp
import jwt
import pytest
import yaml
from aiohttp import web

from sampan.apiserver.authn import Authenticator, UserInfo, issue_service_account_token, load_token_file
from sampan.apiserver.pki import ensure_pki, issue_client_certificate, server_ssl_context, write_kubeconfig

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0"}


@pytest.fixture
def pki(tmp_path):
    return ensure_pki(tmp_path / "tls", ["sampan-test"], [])


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text('s3cret,alice,uid-alice,"dev,ops"\nplain,bob,uid-bob\n')
    return path


@pytest.fixture
async def server(pki, token_file):
    authn = Authenticator(pki.ca_cert_path, token_file, [pki.sa_pub_path])
    seen: list[UserInfo | None] = []

    async def whoami(request: web.Request) -> web.Response:
        user = authn.authenticate(request)
        seen.append(user)
        if user is None:
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
            return web.json_response(status, status=401)
        return web.json_response(user.to_dict())

    async def version(request: web.Request) -> web.Response:
        return web.json_response(VERSION)

    app = web.Application()
    app.router.add_get("/whoami-test", whoami)
    app.router.add_get("/version", version)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}", seen
    await runner.cleanup()


def _client_context(pki, tmp_path, cert_pem=None, key_pem=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert_path))
    if cert_pem is not None:
        (tmp_path / "c.crt").write_bytes(cert_pem)
        (tmp_path / "c.key").write_bytes(key_pem)
        ctx.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    return ctx


async def _get(url, ctx, headers=None):
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/whoami-test", ssl=ctx, headers=headers or {}) as resp:
            return resp.status, await resp.json()


async def test_admin_client_certificate_from_kubeconfig(server, pki, tmp_path):
    url, seen = server
    write_kubeconfig(tmp_path / "kc.yaml", url, pki)
    assert oct((tmp_path / "kc.yaml").stat().st_mode & 0o777) == "0o600"
    config = yaml.safe_load((tmp_path / "kc.yaml").read_text())
    assert config["current-context"] == "sampan"
    user = config["users"][0]["user"]
    cert = base64.b64decode(user["client-certificate-data"])
    key = base64.b64decode(user["client-key-data"])
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == pki.ca_pem
    status, body = await _get(url, _client_context(pki, tmp_path, cert, key))
    assert status == 200
    assert body == {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
    assert seen[-1] == UserInfo("system:admin", "", ["system:masters", "system:authenticated"], {})


async def test_issued_client_certificate(server, pki, tmp_path):
    url, _ = server
    cert, key = issue_client_certificate(pki, "carol", ["team-a", "team-b"], 1)
    status, body = await _get(url, _client_context(pki, tmp_path, cert, key))
    assert status == 200
    assert body["username"] == "carol"
    assert body["groups"] == ["team-a", "team-b", "system:authenticated"]


async def test_foreign_ca_certificate_is_refused(server, pki, tmp_path):
    url, _ = server
    other = ensure_pki(tmp_path / "other", [], [])
    cert, key = issue_client_certificate(other, "mallory", ["system:masters"], 1)
    with pytest.raises(aiohttp.ClientError):
        await _get(url, _client_context(pki, tmp_path, cert, key))


async def test_static_bearer_token(server, pki, tmp_path):
    url, seen = server
    ctx = _client_context(pki, tmp_path)
    status, body = await _get(url, ctx, {"Authorization": "Bearer s3cret"})
    assert status == 200
    assert body == {"username": "alice", "uid": "uid-alice", "groups": ["dev", "ops", "system:authenticated"]}
    status, body = await _get(url, ctx, {"Authorization": "Bearer plain"})
    assert body == {"username": "bob", "uid": "uid-bob", "groups": ["system:authenticated"]}
    status, body = await _get(url, ctx, {"Authorization": "Bearer wrong"})
    assert status == 401 and body["reason"] == "Unauthorized"
    status, _ = await _get(url, ctx)
    assert status == 401 and seen[-1] is None


async def test_service_account_token(server, pki, tmp_path):
    url, _ = server
    token, expires = issue_service_account_token(
        pki, "team", "builder", "sa-uid", ["https://kubernetes.default.svc.cluster.local"], 3600,
        {"kind": "Pod", "name": "build-1", "uid": "pod-uid", "node": {"name": "n1", "uid": "node-uid"}},
    )
    assert expires.endswith("Z")
    status, body = await _get(url, _client_context(pki, tmp_path), {"Authorization": f"Bearer {token}"})
    assert status == 200
    assert body["username"] == "system:serviceaccount:team:builder"
    assert body["uid"] == "sa-uid"
    assert body["groups"] == ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]
    assert body["extra"]["authentication.kubernetes.io/pod-name"] == ["build-1"]
    assert body["extra"]["authentication.kubernetes.io/node-name"] == ["n1"]
    assert body["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")


def test_service_account_claims_shape(pki):
    token, _ = issue_service_account_token(pki, "ns", "sa", "u1", ["api"], 600, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["sub"] == "system:serviceaccount:ns:sa"
    assert claims["aud"] == ["api"]
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u1"}}


def test_service_account_token_rejections(pki, tmp_path):
    authn = Authenticator(pki.ca_cert_path, None, [pki.sa_pub_path])
    aud = ["https://kubernetes.default.svc.cluster.local"]
    good, _ = issue_service_account_token(pki, "ns", "sa", "u1", aud, 600)
    assert authn.authenticate_token(good).name == "system:serviceaccount:ns:sa"
    expired, _ = issue_service_account_token(pki, "ns", "sa", "u1", aud, 600, now=time.time() - 3600)
    assert authn.authenticate_token(expired) is None
    wrong_aud, _ = issue_service_account_token(pki, "ns", "sa", "u1", ["other"], 600)
    assert authn.authenticate_token(wrong_aud) is None
    wrong_iss, _ = issue_service_account_token(pki, "ns", "sa", "u1", aud, 600, issuer="https://evil")
    assert authn.authenticate_token(wrong_iss) is None
    other = ensure_pki(tmp_path / "other", [], [])
    forged, _ = issue_service_account_token(other, "ns", "sa", "u1", aud, 600)
    assert authn.authenticate_token(forged) is None
    assert authn.authenticate_token("a.b.c") is None
    # The account must still exist with the same uid when a getter is given.
    accounts = {("ns", "sa"): {"metadata": {"uid": "u2"}}}
    strict = Authenticator(None, None, [pki.sa_key], service_account_getter=lambda ns, n: accounts.get((ns, n)))
    assert strict.authenticate_token(good) is None
    accounts[("ns", "sa")]["metadata"]["uid"] = "u1"
    assert strict.authenticate_token(good) is not None


def test_token_file_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("tok,user\n")
    with pytest.raises(ValueError, match="must have at least 3 columns"):
        load_token_file(bad)


def test_pki_reuse_and_regenerate(tmp_path):
    d = tmp_path / "tls"
    first = ensure_pki(d, ["a.example"], ["10.1.2.3"])
    modes = {p.name: p.stat().st_mode & 0o777 for p in d.iterdir()}
    assert all(modes[k] == 0o600 for k in ("ca.key", "server.key", "admin.key", "sa.key"))
    server_pem = first.server_cert_path.read_bytes()
    again = ensure_pki(d, ["a.example"], [])
    assert again.server_cert_path.read_bytes() == server_pem
    assert again.ca_pem == first.ca_pem
    moved = ensure_pki(d, ["b.example"], [])
    assert moved.server_cert_path.read_bytes() != server_pem
    assert moved.ca_pem == first.ca_pem
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(moved.server_cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    assert {"localhost", "kubernetes.default.svc.cluster.local", "b.example"} <= names
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def _kubectl_env(tmp_path):
    env = dict(os.environ)
    env["HOME"] = str(tmp_path)
    env.pop("KUBECONFIG", None)
    return env


async def _kubectl(*args, env):
    proc = await asyncio.create_subprocess_exec(
        "kubectl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_real_kubectl_with_written_kubeconfig(server, pki, tmp_path):
    url, seen = server
    kubeconfig = tmp_path / "kubeconfig.yaml"
    write_kubeconfig(kubeconfig, url, pki)
    code, out, err = await _kubectl("--kubeconfig", str(kubeconfig), "get", "--raw", "/whoami-test",
                                    env=_kubectl_env(tmp_path))
    assert code == 0, err
    assert json.loads(out)["username"] == "system:admin"
    assert seen[-1].groups == ["system:masters", "system:authenticated"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_real_kubectl_with_bearer_token(server, pki, tmp_path):
    url, _ = server
    kubeconfig = tmp_path / "token.yaml"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": url, "certificate-authority": str(pki.ca_cert_path)}}],
        "users": [{"name": "alice", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "alice"}}],
    }))
    code, out, err = await _kubectl("--kubeconfig", str(kubeconfig), "get", "--raw", "/whoami-test",
                                    env=_kubectl_env(tmp_path))
    assert code == 0, err
    assert json.loads(out) == {"username": "alice", "uid": "uid-alice", "groups": ["dev", "ops", "system:authenticated"]}

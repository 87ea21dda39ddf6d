"""The ingress controller against a real in-process API server, with real HTTP(S) traffic.

Two aiohttp apps on 127.0.0.1 stand in for pods: the EndpointSlices point at them directly
(only the ingress data path is under test here, not pod networking).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from sampan.client.http import HttpClient
from sampan.client.interface import ENDPOINTSLICES, SECRETS, SERVICES
from sampan.ingress import IngressController
from sampan.ingress.controller import INGRESSCLASSES, INGRESSES
from sampan.ingress.nginx import nginx_binary, self_signed_pem
from sampan.server import RunningServer
from tests.harness import api_server, eventually, http_client

Obj = dict[str, Any]
DATA_PATHS = ["nginx", "inprocess"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def backend_app(name: str) -> tuple[web.AppRunner, int]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=f"{name} {request.path} {request.host}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with api_server(tmp_path / "server") as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[HttpClient]:
    async with http_client(server) as c:
        yield c


@pytest.fixture
async def backends(client: HttpClient) -> AsyncIterator[dict[str, int]]:
    """Services alpha (port 80 "http") and beta (port 8080 "web") backed by local HTTP servers."""
    runners: list[web.AppRunner] = []
    ports: dict[str, int] = {}
    for name, svc_port, port_name in (("alpha", 80, "http"), ("beta", 8080, "web")):
        runner, port = await backend_app(name)
        runners.append(runner)
        ports[name] = port
        await client.create(SERVICES, {
            "metadata": {"name": name},
            "spec": {"ports": [{"name": port_name, "port": svc_port, "targetPort": port}]},
        }, "default")
        await client.create(ENDPOINTSLICES, {
            "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        }, "default")
    yield ports
    for runner in runners:
        await runner.cleanup()


def be(name: str, number: int | None = None, port_name: str | None = None) -> Obj:
    return {"service": {"name": name, "port": {"number": number} if number else {"name": port_name}}}


def rule(host: str, service: Obj, path: str = "/", kind: str = "Prefix") -> Obj:
    return {"host": host, "http": {"paths": [{"path": path, "pathType": kind, "backend": service}]}}


async def get(url: str, host: str | None = None, **kwargs: Any) -> tuple[int, str]:
    headers = {"Host": host} if host else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers, **kwargs) as resp:
            return resp.status, await resp.text()


async def peer_common_name(port: int, sni: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


@pytest.mark.parametrize("data_path", DATA_PATHS)
async def test_ingress_routes_hosts_tls_and_default_backend(
    data_path: str, tmp_path: Path, client: HttpClient, backends: dict[str, int]
) -> None:
    if data_path == "nginx" and nginx_binary() is None:
        pytest.skip("nginx not installed")
    pem = self_signed_pem("secure.test", ["secure.test"])
    crt, _, key = pem.partition(b"-----END CERTIFICATE-----\n")
    crt += b"-----END CERTIFICATE-----\n"
    await client.create(SECRETS, {
        "metadata": {"name": "secure-tls"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()},
    }, "default")
    await client.create(INGRESSES, {
        "metadata": {"name": "web"},
        "spec": {
            "defaultBackend": be("alpha", 80),
            "tls": [{"hosts": ["secure.test"], "secretName": "secure-tls"}],
            "rules": [rule("a.test", be("alpha", 80)), rule("b.test", be("beta", port_name="web")),
                      rule("secure.test", be("beta", 8080), "/api")],
        },
    }, "default")
    await client.create(INGRESSES, {
        "metadata": {"name": "foreign"},
        "spec": {"ingressClassName": "other", "rules": [rule("foreign.test", be("beta", 8080))]},
    }, "default")

    http, https = free_port(), free_port()
    controller = IngressController(client, tmp_path, http, https, "127.0.0.1", ["127.0.0.1"], data_path=data_path)
    await controller.start()
    try:
        ingress_class = await client.get(INGRESSCLASSES, "sampan")
        assert ingress_class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
        base = f"http://127.0.0.1:{http}"
        assert await get(f"{base}/x", "a.test") == (200, "alpha /x a.test")
        assert await get(f"{base}/y", "b.test") == (200, "beta /y b.test")
        assert await get(f"{base}/z", "nowhere.test") == (200, "alpha /z nowhere.test")  # default backend
        assert (await get(f"{base}/", "foreign.test"))[1].startswith("alpha")  # other class ignored

        # TLS with SNI: the Secret's certificate verifies for its host, the default one elsewhere.
        verify = ssl.create_default_context(cadata=crt.decode())
        url = f"https://127.0.0.1:{https}/api/v1"
        assert await get(url, "secure.test", ssl=verify, server_hostname="secure.test") == (
            200, "beta /api/v1 secure.test")
        assert await peer_common_name(https, "secure.test") == "secure.test"
        assert await peer_common_name(https, "unknown.test") == "Sampan Ingress Fake Certificate"

        async def status_set() -> bool:
            ing = await client.get(INGRESSES, "web", "default")
            return ing.get("status", {}).get("loadBalancer", {}).get("ingress") == [{"ip": "127.0.0.1"}]

        await eventually(status_set)
        foreign = await client.get(INGRESSES, "foreign", "default")
        assert not foreign.get("status", {}).get("loadBalancer", {}).get("ingress")

        # An update is picked up: a.test now goes to beta, and without a default backend unknown hosts get 404.
        await client.patch(INGRESSES, "web", {"spec": {"defaultBackend": None, "rules": [
            rule("a.test", be("beta", 8080))]}}, "merge", "default")

        async def updated() -> bool:
            return await get(f"{base}/x", "a.test") == (200, "beta /x a.test")

        await eventually(updated)
        assert (await get(f"{base}/z", "nowhere.test"))[0] == 404

        if data_path == "nginx":
            # A change that does not alter the generated config syncs without reloading nginx.
            reloads, syncs = controller.data_path.reloads, controller.syncs  # type: ignore[attr-defined]
            await client.create(SERVICES, {"metadata": {"name": "unrelated"}, "spec": {"ports": [{"port": 1}]}},
                                "default")

            async def synced() -> bool:
                return controller.syncs > syncs

            await eventually(synced)
            assert controller.data_path.reloads == reloads  # type: ignore[attr-defined]
            certs = list((tmp_path / "ingress" / "certs").glob("*.pem"))
            assert len(certs) == 2 and all(c.stat().st_mode & 0o777 == 0o600 for c in certs)
        pids = nginx_pids(controller)
    finally:
        await controller.stop()
    for pid in pids:  # master and workers are gone, not just the master
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (tmp_path / "ingress" / "nginx.pid").exists() or data_path != "nginx"
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(f"http://127.0.0.1:{http}/", "a.test")


def nginx_pids(controller: IngressController) -> list[int]:
    proc = getattr(getattr(controller.data_path, "process", None), "proc", None)
    if proc is None:
        return []
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert children, "nginx runs worker processes"
    return [proc.pid, *map(int, children)]

"""Streams of pods on a remote agent: the agent serves HTTPS with a certificate the cluster CA
signed for its node, the API server verifies it and proxies kubectl logs, exec and port-forward to it (fake runtime; the agent talks to
the server over HTTPS with the join token, exactly as ``sampan agent --server`` does)."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sampan.client.http import HttpClient
from sampan.client.interface import NODES, PODS
from sampan.client.local import LocalClient
from sampan.node.agent import NodeAgent
from sampan.node.remote_streams import ENDPOINT_LABEL, AgentEndpoint
from sampan.node.runner import read_join_token
from sampan.server import RunningServer, ServerOptions, start_server
from tests.node.agent_harness import eventually
from tests.node.fakes import FakeCgroups, FakeImages, FakeNetwork, FakeRuntime, pod

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(ServerOptions(data_dir=tmp_path, port=0, datastore="memory", scheduler=False,
                                               controllers=[]))
    yield running
    await running.stop()


@pytest.fixture
async def remote(server: RunningServer, tmp_path: Path) -> AsyncIterator[AgentEndpoint]:
    token = read_join_token(tmp_path)
    assert token
    ctx = ssl.create_default_context(cafile=str(tmp_path / "server" / "tls" / "ca.crt"))
    client = HttpClient(server.url, ctx, token=token)
    images = FakeImages(tmp_path / "rootfs")
    images.add("busybox:1.36")
    agent = NodeAgent(client, "remote", tmp_path / "node", FakeRuntime(), images, FakeNetwork(), FakeCgroups(),
                      node_ip="127.0.0.1")
    endpoint = AgentEndpoint(agent, token, host="127.0.0.1", port=0)
    await endpoint.start()  # before the agent registers: the Node then advertises it
    await agent.start()
    yield endpoint
    await agent.stop()
    await endpoint.stop()
    await client.close()


async def kubectl(server: RunningServer, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(str(KUBECTL), "--kubeconfig", str(server.kubeconfig), *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def running_pod(server: RunningServer, name: str, **spec: object) -> LocalClient:
    client = LocalClient(server.registry, field_manager="test")
    await client.create(PODS, pod(name, node="remote", containers=[
        {"name": "c", "image": "busybox:1.36", "command": ["serve", "forever"]}], **spec), "default")

    async def ready() -> bool:
        return (await client.get(PODS, name, "default"))["status"]["phase"] == "Running"

    await eventually(ready)
    return client


async def test_node_advertises_ca_signed_endpoint(server: RunningServer, remote: AgentEndpoint,
                                                   tmp_path: Path) -> None:
    node = await LocalClient(server.registry).get(NODES, "remote")
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == remote.port
    assert node["metadata"]["labels"][ENDPOINT_LABEL] == "true"
    # The served certificate chains to the cluster CA and names this node.
    ca = ssl.create_default_context(cafile=str(tmp_path / "server" / "tls" / "ca.crt"))
    _, writer = await asyncio.open_connection("127.0.0.1", remote.port, ssl=ca, server_hostname="remote")
    subject = dict(pair[0] for pair in writer.get_extra_info("peercert")["subject"])
    writer.close()
    assert subject == {"commonName": "system:node:remote", "organizationName": "system:nodes"}
    # Without the join token the endpoint answers nothing.
    async with aiohttp.ClientSession() as s:
        async with s.get(f"https://127.0.0.1:{remote.port}/logs/default/p", ssl=False) as resp:
            assert resp.status == 401


async def test_kubectl_logs_and_exec_through_remote_agent(server: RunningServer, remote: AgentEndpoint) -> None:
    await running_pod(server, "p")
    code, out, err = await kubectl(server, "logs", "p")
    assert code == 0, err
    assert out == "started serve forever\n"
    code, out, err = await kubectl(server, "logs", "p", "--previous")
    assert code != 0 and 'previous terminated container "c" in pod "p" not found' in err
    code, out, err = await kubectl(server, "exec", "p", "--", "echo", "hi")
    assert code == 0 and out == "echo hi\n", err
    code, _, _ = await kubectl(server, "exec", "p", "--", "fail")
    assert code == 1
    code, _, err = await kubectl(server, "exec", "p", "-c", "nope", "--", "echo")
    assert code != 0 and "container nope is not valid for pod p" in err


async def test_kubectl_port_forward_through_remote_agent(server: RunningServer, remote: AgentEndpoint) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        writer.write(b"pong:" + data)
        await writer.drain()
        writer.close()

    backend = await asyncio.start_server(echo, "127.0.0.1", 0)
    target = backend.sockets[0].getsockname()[1]
    # hostNetwork: the fake network has no netns to enter, so the agent dials its own loopback.
    await running_pod(server, "web", hostNetwork=True)
    proc = await asyncio.create_subprocess_exec(str(KUBECTL), "--kubeconfig", str(server.kubeconfig),
                                                "port-forward", "pod/web", f":{target}",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        local = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        writer.write(b"ping")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), 30) == b"pong:ping"
        writer.close()
    finally:
        proc.terminate()
        await proc.wait()
        backend.close()
        await backend.wait_closed()


async def _impostor(cert_pem: bytes, key_pem: bytes, tmp_path: Path) -> asyncio.Server:
    """A TLS listener with the given certificate (the API server must refuse to talk to it)."""
    (tmp_path / "imp.crt").write_bytes(cert_pem)
    (tmp_path / "imp.key").write_bytes(key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tmp_path / "imp.crt"), str(tmp_path / "imp.key"))

    async def close(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    return await asyncio.start_server(close, "127.0.0.1", 0, ssl=ctx)


def _cert_for(node: str, ca: tuple[object, object] | None) -> tuple[bytes, bytes]:
    """A serving certificate for ``node``: signed by ``ca`` (cert, key), else self-signed."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from sampan.apiserver.nodecerts import sign
    from sampan.node.servingcert import make_request

    key_pem, body = make_request(node, [node, "127.0.0.1"])
    csr = x509.load_pem_x509_csr(base64.b64decode(body["spec"]["request"]))
    key = serialization.load_pem_private_key(key_pem, None)
    if ca is not None:
        return sign(ca[0], ca[1], csr), key_pem
    fake_ca = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(csr.subject)
               .public_key(key.public_key()).serial_number(1)  # type: ignore[arg-type]
               .not_valid_before(__import__("datetime").datetime(2020, 1, 1))
               .not_valid_after(__import__("datetime").datetime(2099, 1, 1))
               .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
               .sign(key, hashes.SHA256()))  # type: ignore[arg-type]
    return fake_ca.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.mark.parametrize("kind", ["self-signed", "other node"])
async def test_endpoint_without_the_nodes_ca_certificate_is_refused(
        server: RunningServer, remote: AgentEndpoint, tmp_path: Path, kind: str) -> None:
    from sampan.apiserver import pki as pkimod

    client = await running_pod(server, "p")
    tls = tmp_path / "server" / "tls"
    ca = (pkimod._load_cert(tls / "ca.crt"), pkimod._load_key(tls / "ca.key"))
    # Self-signed with the right names, or issued by the cluster CA but for another node.
    cert, key = _cert_for("remote", None) if kind == "self-signed" else _cert_for("other", ca)
    impostor = await _impostor(cert, key, tmp_path)
    try:
        port = impostor.sockets[0].getsockname()[1]
        await client.patch(NODES, "remote", {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}},
                           "merge", subresource="status")

        async def refused() -> str:
            code, _, err = await kubectl(server, "logs", "p")
            return err if code != 0 else ""

        err = await eventually(refused)
        assert "error dialing the node agent" in err and "not one the cluster CA issued for this node" in err
    finally:
        impostor.close()
        await impostor.wait_closed()


async def _served_serial(port: int, tmp_path: Path) -> int:
    ca = ssl.create_default_context(cafile=str(tmp_path / "server" / "tls" / "ca.crt"))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ca, server_hostname="remote")
    serial = int(writer.get_extra_info("peercert")["serialNumber"], 16)
    writer.close()
    return serial


async def test_endpoint_renews_its_certificate_while_serving(server: RunningServer, remote: AgentEndpoint,
                                                             tmp_path: Path) -> None:
    import datetime as dt

    before = await _served_serial(remote.port, tmp_path)
    assert remote._renewal is not None and remote.cert is not None
    remote._renewal.cancel()
    await asyncio.gather(remote._renewal, return_exceptions=True)
    remote.cert.renew_at = dt.datetime.now(dt.timezone.utc)  # due now
    remote._renewal = asyncio.create_task(remote._renew())

    async def renewed() -> int:
        serial = await _served_serial(remote.port, tmp_path)
        return serial if serial != before else 0

    await eventually(renewed)
    # The streams keep working with the new certificate.
    await running_pod(server, "p")
    code, out, err = await kubectl(server, "logs", "p")
    assert code == 0 and out == "started serve forever\n", err

"""A node agent joining a real server over HTTPS with the join token (the remote-agent path),
and the streams it serves through the API server: kubectl logs and exec (fake runtime)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sampan.apiserver import keys
from sampan.client.http import HttpClient
from sampan.client.interface import NODES, PODS
from sampan.node.agent import NodeAgent
from sampan.node.runner import JOIN_USER, read_join_token
from sampan.node.streams import AgentStreams
from sampan.server import RunningServer, ServerOptions, start_server
from tests.node.fakes import FakeCgroups, FakeImages, FakeNetwork, FakeRuntime, pod
from tests.node.agent_harness import eventually

KUBECTL = shutil.which("kubectl")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(ServerOptions(data_dir=tmp_path, port=0, datastore="memory", scheduler=False,
                                               controllers=[]))
    yield running
    await running.stop()


@pytest.fixture
async def joined(server: RunningServer, tmp_path: Path) -> AsyncIterator[tuple[NodeAgent, FakeRuntime]]:
    token = read_join_token(tmp_path)
    assert token
    ctx = ssl.create_default_context(cafile=str(tmp_path / "server" / "tls" / "ca.crt"))
    client = HttpClient(server.url, ctx, token=token)
    runtime = FakeRuntime()
    images = FakeImages(tmp_path / "rootfs")
    images.add("busybox:1.36")
    agent = NodeAgent(client, "joined", tmp_path / "node", runtime, images, FakeNetwork(), FakeCgroups(),
                      node_ip="198.18.255.2")
    await agent.start()
    server.runner.app[keys.STREAM_BACKEND].register("joined", AgentStreams(agent))
    yield agent, runtime
    await agent.stop()
    await client.close()


def test_token_command_prints_join_token(tmp_path: Path) -> None:
    from sampan.node.runner import ensure_join_token

    token = ensure_join_token(tmp_path)
    assert ensure_join_token(tmp_path) == token  # made once
    out = subprocess.run([sys.executable, "-m", "sampan", "token", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == token  # no cluster CA yet: the bare secret
    ca = tmp_path / "server" / "tls" / "ca.crt"
    ca.parent.mkdir(parents=True, exist_ok=True)
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
    out = subprocess.run([sys.executable, "-m", "sampan", "token", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"K10{hashlib.sha256(ca.read_bytes()).hexdigest()}::{token}"
    line = (tmp_path / "server" / "tokens.csv").read_text().strip()
    assert line.startswith(f"{token},{JOIN_USER},") and "system:nodes" in line


async def test_join_token_is_a_node_identity(server: RunningServer, tmp_path: Path) -> None:
    token = read_join_token(tmp_path)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "server" / "tls" / "ca.crt"))
    async with HttpClient(server.url, ctx, token=token) as client:
        review = await client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", None,
                                      {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    user = review["status"]["userInfo"]
    assert user["username"] == JOIN_USER and "system:nodes" in user["groups"]


async def test_joined_agent_runs_pods(joined: tuple[NodeAgent, FakeRuntime], server: RunningServer) -> None:
    agent, runtime = joined
    local = server.registry
    from sampan.client.local import LocalClient

    client = LocalClient(local, field_manager="test")
    node = await client.get(NODES, "joined")
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")
    await client.create(PODS, pod("p", node="joined"), "default")

    async def ready() -> bool:
        p = await client.get(PODS, "p", "default")
        return p.get("status", {}).get("phase") == "Running"

    await eventually(ready)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
async def test_kubectl_logs_and_exec(joined: tuple[NodeAgent, FakeRuntime], server: RunningServer) -> None:
    from sampan.client.local import LocalClient

    client = LocalClient(server.registry, field_manager="test")
    await client.create(PODS, pod("p", node="joined", containers=[
        {"name": "c", "image": "busybox:1.36", "command": ["serve", "forever"]}]), "default")

    async def ready() -> bool:
        p = await client.get(PODS, "p", "default")
        return p.get("status", {}).get("phase") == "Running"

    await eventually(ready)

    async def kubectl(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(KUBECTL), "--kubeconfig", str(server.kubeconfig), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await kubectl("logs", "p")
    assert code == 0, err
    assert out == "started serve forever\n"
    code, out, _ = await kubectl("logs", "p", "--timestamps")
    assert out.split(" ", 1)[1] == "started serve forever\n" and out[:4].isdigit()
    code, out, err = await kubectl("logs", "p", "--previous")
    assert code != 0 and 'previous terminated container "c" in pod "p" not found' in err
    code, out, err = await kubectl("exec", "p", "--", "echo", "hi")
    assert code == 0 and out == "echo hi\n", err
    code, _, _ = await kubectl("exec", "p", "--", "fail")
    assert code == 1
    raw = await client.get(PODS, "p", "default")
    assert json.dumps(raw["status"]["containerStatuses"][0]["state"]).startswith('{"running"')


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
def test_cli_agent_joins_with_token(tmp_path: Path) -> None:
    from tests.e2e.cluster import start_cluster, start_process, stop_process

    cluster = start_cluster(tmp_path / "server", "memory")
    agent = None
    try:
        token = subprocess.run([sys.executable, "-m", "sampan", "token", "--data-dir", str(tmp_path / "server")],
                               capture_output=True, text=True, check=True).stdout.strip()
        url = next(line.split(" at ")[1].split()[0] for line in cluster.output if " ready at " in line)
        agent, output = start_process(["agent", "--server", url, "--token", token, "--node-name", "cli-node",
                                       "--data-dir", str(tmp_path / "node"), "--runtime", "raw",
                                       "--kubelet-port", "0",
                                       # no proxy/DNS/NetworkPolicy: they would program this host's network
                                       "--disable", "kube-proxy", "--disable", "network-policy", "--disable", "coredns"])
        assert "joined" in "".join(output)
        node = json.loads(cluster.kubectl("get", "node", "cli-node", "-o", "json").stdout)
        ready = {c["type"]: c for c in node["status"]["conditions"]}["Ready"]
        assert ready["status"] == "True" and "isolates nothing" in ready["message"]
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("raw://")
        assert node["metadata"]["annotations"]["sampan.dev/runtime-isolation"].startswith("none")
        # Its stream endpoint (like the kubelet's 10250, here any free port) is advertised, and its
        # serving certificate, kept in the agent's data dir, was issued by the cluster CA for this node.
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] not in (0, 10250)
        from cryptography import x509

        serving = tmp_path / "node" / "agent" / "serving"
        cert = x509.load_pem_x509_certificate((serving / "kubelet.crt").read_bytes())
        ca = x509.load_pem_x509_certificate((tmp_path / "server" / "server" / "tls" / "ca.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == "CN=system:node:cli-node,O=system:nodes"
        assert (serving / "kubelet.key").stat().st_mode & 0o077 == 0
    finally:
        if agent is not None:
            stop_process(agent)
        cluster.stop()


def test_cli_agent_refuses_a_server_whose_ca_is_not_the_tokens(tmp_path: Path) -> None:
    from tests.e2e.cluster import start_cluster

    cluster = start_cluster(tmp_path / "server", "memory")
    try:
        token = subprocess.run([sys.executable, "-m", "sampan", "token", "--data-dir", str(tmp_path / "server")],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert token.startswith("K10") and "::" in token
        secret = token.split("::", 1)[1]
        url = next(line.split(" at ")[1].split()[0] for line in cluster.output if " ready at " in line)
        other_cluster = f"K10{'0' * 64}::{secret}"
        done = subprocess.run([sys.executable, "-m", "sampan", "agent", "--server", url, "--token", other_cluster,
                               "--node-name", "impostor-check", "--data-dir", str(tmp_path / "node"),
                               "--runtime", "raw", "--kubelet-port", "0", "--disable", "kube-proxy",
                               "--disable", "network-policy", "--disable", "coredns"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "the server's CA does not match the token" in done.stderr + done.stdout
        # Nothing secret was sent and nothing registered.
        assert cluster.kubectl("get", "node", "impostor-check", check=False).returncode != 0
    finally:
        cluster.stop()


async def test_cacerts_is_public_and_matches_the_token(server: RunningServer, tmp_path: Path) -> None:
    from sampan.client.lite import LiteHttpClient
    from sampan.node import jointoken

    probe = LiteHttpClient(server.url, False)  # no credentials at all
    try:
        status, pem = await probe.fetch_public(jointoken.CA_PATH)
    finally:
        await probe.close()
    assert status == 200 and pem == (tmp_path / "server" / "tls" / "ca.crt").read_bytes()
    expected, secret = jointoken.parse_token(jointoken.format_token(read_join_token(tmp_path) or "", pem))
    ctx = jointoken.verified_context(pem, expected or "")
    # Verified against the CA, for the API server's name (not the URL's 127.0.0.1).
    client = LiteHttpClient(server.url, ctx, token=secret, server_hostname=jointoken.SERVER_NAME)
    try:
        assert "items" in await client.list(NODES)
    finally:
        await client.close()
    wrong_name = LiteHttpClient(server.url, ctx, token=secret, server_hostname="node-a")
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await wrong_name.list(NODES)
    finally:
        await wrong_name.close()

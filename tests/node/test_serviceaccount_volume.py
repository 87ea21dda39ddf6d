"""A pod admitted with the kube-api-access volume gets, on a joined agent (fake runtime),
a working bound token, the cluster CA and its namespace, mounted read-only in every container."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sampan.client.http import HttpClient
from sampan.client.interface import PODS
from sampan.client.local import LocalClient
from sampan.node.agent import NodeAgent
from sampan.node.runner import read_join_token
from sampan.registry.serviceaccount_admission import TOKEN_MOUNT_PATH
from sampan.server import RunningServer, ServerOptions, start_server
from tests.node.agent_harness import eventually
from tests.node.fakes import FakeCgroups, FakeImages, FakeNetwork, FakeRuntime, pod


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(ServerOptions(data_dir=tmp_path, port=0, datastore="memory", scheduler=False,
                                               controllers=["serviceaccount", "root-ca-cert-publisher"]))
    yield running
    await running.stop()


async def test_token_volume_contents(server: RunningServer, tmp_path: Path) -> None:
    ca = tmp_path / "server" / "tls" / "ca.crt"
    ctx = ssl.create_default_context(cafile=str(ca))
    client = HttpClient(server.url, ctx, token=read_join_token(tmp_path))
    runtime = FakeRuntime()
    images = FakeImages(tmp_path / "rootfs")
    images.add("busybox:1.36")
    agent = NodeAgent(client, "joined", tmp_path / "node", runtime, images, FakeNetwork(), FakeCgroups(),
                      node_ip="198.18.255.2")
    await agent.start()
    try:
        local = LocalClient(server.registry, field_manager="test")
        created = await local.create(PODS, pod("p", node="joined", initContainers=[
            {"name": "init", "image": "busybox:1.36", "command": ["exit", "0"]}]), "default")
        [vol] = created["spec"]["volumes"]
        assert vol["name"].startswith("kube-api-access-")

        async def running() -> bool:
            got = await local.get(PODS, "p", "default")
            return got["status"]["phase"] == "Running"

        await eventually(running)
        root = agent.pods_dir / created["metadata"]["uid"] / "volumes" / "projected" / vol["name"]
        assert sorted(p.name for p in root.iterdir() if not p.name.startswith("..")) == ["ca.crt", "namespace", "token"]
        assert (root / "namespace").read_text() == "default"
        assert (root / "ca.crt").read_bytes() == ca.read_bytes()
        assert oct((root / "token").stat().st_mode & 0o777) == "0o644"
        # The token is a real bound ServiceAccount token: the API server knows who it is.
        async with HttpClient(server.url, ctx, token=(root / "token").read_text()) as as_pod:
            review = await as_pod.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", None,
                                          {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        user = review["status"]["userInfo"]
        assert user["username"] == "system:serviceaccount:default:default"
        assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
        # Both the init container and the app container see it read-only at the well-known path.
        seen = {c.name: [m for m in c.mounts if m.destination == TOKEN_MOUNT_PATH] for c in runtime.configs.values()}
        assert set(seen) == {"init", "c"}
        for mounts in seen.values():
            assert len(mounts) == 1 and mounts[0].read_only and mounts[0].source == str(root)
    finally:
        await agent.stop()
        await client.close()

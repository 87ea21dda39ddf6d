"""metrics.k8s.io/v1beta1 served from a fake sample source: discovery, lists, selectors, errors,
and the real ``kubectl top`` against an in-process server."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sampan.apiserver import keys
from sampan.apiserver.app import build_app
from sampan.apiserver.metrics_api import cpu_quantity, memory_quantity
from sampan.node.streams import NodeStreams
from sampan.registry.options import WriteOptions
from sampan.registry.registry import Registry
from sampan.server import ServerOptions, start_server
from tests.apiserver.conftest import call
from tests.e2e.cluster import KUBECTL

BASE = "/apis/metrics.k8s.io/v1beta1"


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi"}, "allocatable": {"cpu": "2", "memory": "4Gi"}}}


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox"}]}}


class FakeBackend:
    """An agent's snapshot, like AgentStreams.resource_metrics()."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {"node": None, "pods": []}

    def resource_metrics(self) -> dict[str, Any]:
        return self.snapshot


async def fill(registry: Registry, backend: FakeBackend) -> None:
    await registry.must("", "v1", "nodes").create("", node("n1", role="worker"), WriteOptions())
    await registry.must("", "v1", "nodes").create("", node("n2"), WriteOptions())  # no samples yet
    uids = {}
    for name, labels in (("web", {"app": "web"}), ("db", {"app": "db"}), ("new", {"app": "web"})):
        created = await registry.must("", "v1", "pods").create("default", pod(name, **labels), WriteOptions())
        uids[name] = created["metadata"]["uid"]
    now = time.time()
    backend.snapshot = {
        "node": {"name": "n1", "timestamp": now, "window": 15.012, "cpu": 250_000_000, "memory": 1536 * 1024 * 1024},
        "pods": [
            {"namespace": "default", "name": "web", "uid": uids["web"], "timestamp": now, "window": 15.0,
             "containers": [{"name": "app", "cpu": 1_234_567, "memory": 2048 * 1024}]},
            {"namespace": "default", "name": "db", "uid": uids["db"], "timestamp": now, "window": 15.0,
             "containers": [{"name": "app", "cpu": 5_000_000, "memory": 1000}]},
            # A pod that is gone from the API is not served.
            {"namespace": "default", "name": "old", "uid": "gone", "timestamp": now, "window": 15.0,
             "containers": [{"name": "app", "cpu": 1, "memory": 1}]},
        ],
    }


@pytest.fixture
async def http(registry: Registry) -> AsyncIterator[tuple[TestClient, FakeBackend]]:
    streams = NodeStreams()
    backend = FakeBackend()
    streams.register("n1", backend)
    await fill(registry, backend)
    async with TestClient(TestServer(build_app(registry, stream_backend=streams))) as c:
        yield c, backend


def test_quantities() -> None:
    assert cpu_quantity(1_234_567) == "1234567n"
    assert memory_quantity(2048 * 1024) == "2048Ki"
    assert memory_quantity(1000) == "1000"


async def test_discovery(http: tuple[TestClient, FakeBackend]) -> None:
    client, _ = http
    code, groups = await call(client, "GET", "/apis")
    assert code == 200
    group = next(g for g in groups["groups"] if g["name"] == "metrics.k8s.io")
    assert group["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    code, doc = await call(client, "GET", BASE)
    assert code == 200
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["nodes"]["kind"] == "NodeMetrics" and not by_name["nodes"]["namespaced"]
    assert by_name["pods"]["kind"] == "PodMetrics" and by_name["pods"]["namespaced"]
    assert sorted(by_name["pods"]["verbs"]) == ["get", "list"]
    code, agg = await call(client, "GET", "/apis",
                           Accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    assert code == 200
    assert "metrics.k8s.io" in [g["metadata"]["name"] for g in agg["items"]]


async def test_node_metrics(http: tuple[TestClient, FakeBackend]) -> None:
    client, _ = http
    code, lst = await call(client, "GET", f"{BASE}/nodes")
    assert code == 200 and lst["kind"] == "NodeMetricsList" and lst["apiVersion"] == "metrics.k8s.io/v1beta1"
    [item] = lst["items"]  # n2 has no sample
    assert item["kind"] == "NodeMetrics" and item["metadata"]["name"] == "n1"
    assert item["metadata"]["labels"] == {"role": "worker"}
    assert item["usage"] == {"cpu": "250000000n", "memory": "1572864Ki"}
    assert item["window"] == "15.012s" and item["timestamp"].endswith("Z")
    code, one = await call(client, "GET", f"{BASE}/nodes/n1")
    assert code == 200 and one["usage"]["cpu"] == "250000000n"
    code, missing = await call(client, "GET", f"{BASE}/nodes/n2")
    assert code == 404 and missing["reason"] == "NotFound"
    code, _ = await call(client, "GET", f"{BASE}/nodes?labelSelector=role%3Ddb")
    assert code == 200
    assert (await call(client, "GET", f"{BASE}/nodes?labelSelector=role%3Ddb"))[1]["items"] == []


async def test_pod_metrics(http: tuple[TestClient, FakeBackend]) -> None:
    client, _ = http
    code, lst = await call(client, "GET", f"{BASE}/namespaces/default/pods")
    assert code == 200 and lst["kind"] == "PodMetricsList"
    assert sorted(i["metadata"]["name"] for i in lst["items"]) == ["db", "web"]
    code, sel = await call(client, "GET", f"{BASE}/namespaces/default/pods?labelSelector=app%3Dweb")
    [web] = sel["items"]
    assert web["metadata"]["namespace"] == "default" and web["kind"] == "PodMetrics"
    assert web["containers"] == [{"name": "app", "usage": {"cpu": "1234567n", "memory": "2048Ki"}}]
    code, all_ns = await call(client, "GET", f"{BASE}/pods")
    assert code == 200 and len(all_ns["items"]) == 2
    assert (await call(client, "GET", f"{BASE}/namespaces/other/pods"))[1]["items"] == []
    code, one = await call(client, "GET", f"{BASE}/namespaces/default/pods/db")
    assert code == 200 and one["containers"][0]["usage"]["memory"] == "1000"
    for path in (f"{BASE}/namespaces/default/pods/new", f"{BASE}/namespaces/default/pods/nope"):
        code, status = await call(client, "GET", path)
        assert code == 404 and status["kind"] == "Status"
    code, status = await call(client, "GET", f"{BASE}/namespaces/default/pods?labelSelector=%3D%3D%3D")
    assert code == 400 and status["kind"] == "Status"


async def test_writes_and_watch_are_refused(http: tuple[TestClient, FakeBackend]) -> None:
    client, _ = http
    code, status = await call(client, "POST", f"{BASE}/namespaces/default/pods", {"kind": "PodMetrics"})
    assert code == 405 and status["kind"] == "Status"
    code, status = await call(client, "DELETE", f"{BASE}/nodes/n1")
    assert code == 405 and status["kind"] == "Status"
    code, status = await call(client, "GET", f"{BASE}/nodes?watch=true")
    assert code == 405 and status["kind"] == "Status"


async def kubectl(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL or "kubectl", f"--kubeconfig={kubeconfig}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "KUBECACHEDIR": ""})
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
async def test_kubectl_top(tmp_path: Path) -> None:
    server = await start_server(ServerOptions(data_dir=tmp_path, port=0, datastore="memory", scheduler=False,
                                              controllers=[]))
    try:
        streams = server.runner.app[keys.STREAM_BACKEND]
        backend = FakeBackend()
        streams.register("n1", backend)
        await fill(server.registry, backend)
        cache = f"--cache-dir={tmp_path / 'cache'}"
        code, out, err = await kubectl(server.kubeconfig, cache, "top", "node")
        assert code == 0, err
        header, *rows = out.strip().splitlines()
        assert header.split()[:2] == ["NAME", "CPU(cores)"]
        assert rows[0].split()[:2] == ["n1", "250m"] and "1536Mi" in rows[0]
        code, out, err = await kubectl(server.kubeconfig, cache, "top", "pod", "--containers", "-l", "app=web")
        assert code == 0, err
        [row] = out.strip().splitlines()[1:]
        assert row.split() == ["web", "app", "2m", "2Mi"]  # kubectl rounds 1.23m up
        code, out, err = await kubectl(server.kubeconfig, cache, "top", "pod")
        assert code == 0, err
        assert sorted(line.split()[0] for line in out.strip().splitlines()[1:]) == ["db", "web"]
    finally:
        await server.stop()

"""The proxier against the kernel: a "node" netns with a bridge and three busybox httpd
"pods"; the proxier programs a test-named table inside the node netns only."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sampan.client.interface import ENDPOINTSLICES, NODES, SERVICES
from sampan.client.local import LocalClient
from sampan.controllers.manager import ControllerManager
from sampan.proxy.proxier import Proxier
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore
from tests.controllers.conftest import eventually
from tests.proxy.netns import TestNet, available, curl, sh, wait_serving

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

NODE = "node-a"


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    store = MemoryStore()
    await store.start()
    reg = Registry(store, bookmark_interval=0.2, service_cidr="198.19.0.0/16")
    await bootstrap(reg)
    yield reg
    await store.close()


@pytest.fixture
def client(registry: Registry) -> LocalClient:
    return LocalClient(registry, field_manager="test")


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[TestNet]:
    tn = TestNet()
    try:
        tn.setup_node(tmp_path)
        for i in range(3):
            tn.add_pod(i)
        tn.add_pod(3, serve=False)  # the client pod
        for pod in tn.pods[:3]:
            await wait_serving(tn.node_ns, f"http://{pod.ip}/")
        yield tn
    finally:
        tn.close()


@pytest.fixture
async def proxier(client: LocalClient, net: TestNet) -> AsyncIterator[Proxier]:
    table = f"sampan-test-{secrets.token_hex(4)}"
    px = Proxier(client, NODE, [net.node_ip], "198.18.0.0/16", "198.19.0.0/16", table=table,
                 netns=net.node_ns, min_sync_interval=0.05, health_host="127.0.0.1")
    await px.start()
    try:
        yield px
    finally:
        await px.stop(delete_table=True)
        listed = sh("ip", "netns", "exec", net.node_ns, "nft", "list", "tables", check=False).stdout
        assert table not in listed


def endpoint(ip: str, ready: bool = True, node: str = NODE) -> dict:
    return {"addresses": [ip], "nodeName": node, "conditions": {"ready": ready, "serving": ready, "terminating": False}}


async def make_service(client: LocalClient, net: TestNet, name: str, **spec: object) -> dict:
    body = {"metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 80}], **spec}}
    svc = await client.create(SERVICES, body, "default")
    await client.create(ENDPOINTSLICES, {
        "metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [endpoint(p.ip) for p in net.pods[:3]],
    }, "default")
    return svc


async def served(ns: str, url: str, n: int = 30) -> set[str]:
    bodies = set()
    for _ in range(n):
        code, body = await curl(ns, url)
        assert code == 0, f"curl {url} from {ns} exit {code}"
        bodies.add(body)
    return bodies


async def programmed(px: Proxier, needle: str) -> None:
    async def check() -> bool:
        out = sh("ip", "netns", "exec", px.netns or "", "nft", "list", "table", "ip", px.table).stdout
        return needle in out
    await eventually(check)


async def test_cluster_ip_and_node_port(client: LocalClient, net: TestNet, proxier: Proxier) -> None:
    svc = await make_service(client, net, "web", type="NodePort")
    cip, nodeport = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    assert cip.startswith("198.19.")
    await programmed(proxier, f"{cip} . tcp . 80")
    names = {p.name for p in net.pods[:3]}
    client_pod = net.pods[3].netns
    assert await served(client_pod, f"http://{cip}/") == names
    assert await served(net.node_ns, f"http://{cip}/") == names
    assert await served(net.node_ns, f"http://{net.node_ip}:{nodeport}/", 20) <= names
    assert len(await served(net.node_ns, f"http://127.0.0.1:{nodeport}/", 20)) >= 2
    assert len(await served(client_pod, f"http://{net.node_ip}:{nodeport}/", 20)) >= 2
    # Hairpin: a pod reaching itself through its service.
    own = net.pods[0]
    assert own.name in await served(own.netns, f"http://{cip}/", 30)
    # A service address nothing claims is refused, not routed away.
    assert (await curl(client_pod, "http://198.19.255.254/"))[0] == 7

    # Zero ready endpoints: connections are refused at once (curl 7), not timed out (28).
    await client.patch(ENDPOINTSLICES, "web-1", {"endpoints": [endpoint(p.ip, ready=False) for p in net.pods[:3]]},
                       "merge", "default")
    await programmed(proxier, "goto reject-chain")
    assert (await curl(client_pod, f"http://{cip}/"))[0] == 7
    assert (await curl(net.node_ns, f"http://{cip}/"))[0] == 7
    assert (await curl(net.node_ns, f"http://127.0.0.1:{nodeport}/"))[0] == 7
    assert proxier.partial_syncs >= 1  # changes after the first sync went out as a diff


async def test_terminating_endpoints_serve_when_no_ready(client: LocalClient, net: TestNet, proxier: Proxier) -> None:
    svc = await make_service(client, net, "drain")
    eps = [endpoint(p.ip, ready=False) for p in net.pods[:3]]
    eps[1]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    await client.patch(ENDPOINTSLICES, "drain-1", {"endpoints": eps}, "merge", "default")
    await programmed(proxier, f"dnat to {net.pods[1].ip}:80")
    await asyncio.sleep(0.2)
    assert await served(net.pods[3].netns, f"http://{svc['spec']['clusterIP']}/", 10) == {net.pods[1].name}


async def test_session_affinity_sticks(client: LocalClient, net: TestNet, proxier: Proxier) -> None:
    svc = await make_service(client, net, "sticky", sessionAffinity="ClientIP")
    cip = svc["spec"]["clusterIP"]
    await programmed(proxier, "update @affinity-")
    assert len(await served(net.pods[3].netns, f"http://{cip}/", 20)) == 1
    assert len(await served(net.node_ns, f"http://{cip}/", 20)) == 1


async def test_load_balancer(registry: Registry, client: LocalClient, net: TestNet, proxier: Proxier) -> None:
    await client.create(NODES, {"metadata": {"name": NODE}})
    await client.patch(NODES, NODE, {"status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "addresses": [{"type": "InternalIP", "address": net.node_ip}]}}, "merge", subresource="status")
    manager = ControllerManager(LocalClient(registry, field_manager="kube-controller-manager"), ["servicelb"])
    await manager.start()
    try:
        svc = await make_service(client, net, "lb", type="LoadBalancer", externalTrafficPolicy="Local",
                                 ports=[{"name": "http", "port": 8081, "targetPort": 80}])

        async def ingress() -> list:
            live = await client.get(SERVICES, "lb", "default")
            return ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []

        assert [i["ip"] for i in await eventually(ingress)] == [net.node_ip]
        await programmed(proxier, f"{net.node_ip} . tcp . 8081")
        names = {p.name for p in net.pods[:3]}
        assert await served(net.pods[3].netns, f"http://{net.node_ip}:8081/", 20) <= names
        # healthCheckNodePort answers with the number of local endpoints.
        port = svc["spec"]["healthCheckNodePort"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = (await reader.read()).decode()
        writer.close()
        assert reply.startswith("HTTP/1.1 200") and '"localEndpoints": 3' in reply
    finally:
        await manager.stop()

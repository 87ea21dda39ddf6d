"""ServiceLB: LoadBalancer Services get the ready nodes' InternalIPs as ingress."""

from __future__ import annotations

from sampan.client.interface import NODES, SERVICES
from sampan.controllers.servicelb import node_ingress
from tests.controllers.conftest import eventually


def node(name: str, ip: str, ready: str = "True") -> dict:
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        },
    }


def lb_service(name: str, **spec: object) -> dict:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }


def test_node_ingress_skips_not_ready_nodes() -> None:
    got = node_ingress([node("b", "198.18.0.2"), node("a", "198.18.0.1"), node("c", "198.18.0.3", "False")])
    assert got == [{"ip": "198.18.0.1", "ipMode": "VIP"}, {"ip": "198.18.0.2", "ipMode": "VIP"}]


async def test_loadbalancer_gets_node_addresses(client, start_controllers) -> None:
    for n in (node("n1", "198.18.0.1"), node("n2", "198.18.0.2", "False")):
        created = await client.create(NODES, {"metadata": n["metadata"]})
        await client.patch(NODES, created["metadata"]["name"], {"status": n["status"]}, "merge", subresource="status")
    await client.create(SERVICES, lb_service("web"), "default")
    await client.create(SERVICES, lb_service("other", loadBalancerClass="example.com/lb"), "default")
    await client.create(SERVICES, {"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 80}]}}, "default")
    await start_controllers("servicelb")

    async def ingress(name: str) -> list:
        svc = await client.get(SERVICES, name, "default")
        return ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []

    async def web_has_n1() -> bool:
        return [i["ip"] for i in await ingress("web")] == ["198.18.0.1"]

    await eventually(web_has_n1)

    # A second node turning ready is added.
    await client.patch(NODES, "n2", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "merge",
                       subresource="status")

    async def web_has_both() -> bool:
        return [i["ip"] for i in await ingress("web")] == ["198.18.0.1", "198.18.0.2"]

    await eventually(web_has_both)
    assert await ingress("other") == []  # another class's service is not ours
    assert await ingress("plain") == []

    # Switching away from LoadBalancer clears the status we set.
    await client.patch(SERVICES, "web", {"spec": {"type": "ClusterIP"}}, "merge", "default")

    async def web_cleared() -> bool:
        return await ingress("web") == []

    await eventually(web_cleared)

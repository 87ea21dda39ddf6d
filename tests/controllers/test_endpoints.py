"""The Endpoints controller over a real registry: the test plays the kubelet by patching
pod status (podIP, Ready)."""

from __future__ import annotations

from sampan.api.errors import APIError
from sampan.client.interface import ENDPOINTS, PODS, SERVICES
from sampan.controllers.util.endpoints import TRIGGER_TIME
from tests.controllers.conftest import eventually


def pod(name: str, app: str = "web", port_name: str = "http", port: int = 8080) -> dict:
    return {
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "c", "image": "nginx", "ports": [{"name": port_name, "containerPort": port}]}],
        },
    }


async def run_pod(client, name: str, ip: str, ready: bool = True) -> None:
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }
    await client.patch(PODS, name, {"status": status}, "merge", "default", subresource="status")


def service(name: str = "web", **spec: object) -> dict:
    base = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    return {"metadata": {"name": name, "labels": {"tier": "front"}}, "spec": {**base, **spec}}


async def get_endpoints(client, name: str = "web") -> dict:
    """The Endpoints object, or {} while there is none."""
    try:
        return await client.get(ENDPOINTS, name, "default")
    except APIError as exc:
        if exc.code == 404:
            return {}
        raise


async def test_ready_and_not_ready_addresses(client, start_controllers) -> None:
    await start_controllers("endpoints")
    await client.create(SERVICES, service(), "default")
    for name in ("a", "b", "c"):
        await client.create(PODS, pod(name), "default")
    await client.create(PODS, pod("other", app="db"), "default")
    await run_pod(client, "a", "10.42.0.10")
    await run_pod(client, "b", "10.42.0.11", ready=False)
    await run_pod(client, "other", "10.42.0.99")
    # "c" has no IP yet: not listed at all.

    async def listed() -> dict | None:
        ep = await get_endpoints(client)
        subsets = ep.get("subsets") or []
        if len(subsets) == 1 and subsets[0].get("addresses") and subsets[0].get("notReadyAddresses"):
            return ep
        return None

    ep = await eventually(listed)
    subset = ep["subsets"][0]
    assert [a["ip"] for a in subset["addresses"]] == ["10.42.0.10"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.42.0.11"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]  # named targetPort resolved
    ref = subset["addresses"][0]["targetRef"]
    assert ref["kind"] == "Pod" and ref["name"] == "a" and ref["uid"]
    assert subset["addresses"][0]["nodeName"] == "node-1"
    assert ep["metadata"]["labels"] == {"tier": "front"}
    assert ep["metadata"]["annotations"][TRIGGER_TIME].endswith("Z")

    await run_pod(client, "b", "10.42.0.11", ready=True)

    async def both_ready() -> bool:
        subsets = (await get_endpoints(client)).get("subsets") or []
        return len(subsets) == 1 and [a["ip"] for a in subsets[0].get("addresses", [])] == ["10.42.0.10", "10.42.0.11"]

    await eventually(both_ready)
    await client.delete(PODS, "a", "default")

    async def one_left() -> bool:
        subsets = (await get_endpoints(client)).get("subsets") or []
        return len(subsets) == 1 and [a["ip"] for a in subsets[0].get("addresses", [])] == ["10.42.0.11"]

    await eventually(one_left)


async def test_publish_not_ready_and_port_groups(client, start_controllers) -> None:
    await start_controllers("endpoints")
    await client.create(SERVICES, service(publishNotReadyAddresses=True), "default")
    await client.create(PODS, pod("a", port=8080), "default")
    await client.create(PODS, pod("b", port=9090), "default")
    await run_pod(client, "a", "10.42.0.20", ready=False)
    await run_pod(client, "b", "10.42.0.21", ready=False)

    async def grouped() -> list | None:
        subsets = (await get_endpoints(client)).get("subsets") or []
        return subsets if len(subsets) == 2 else None

    subsets = await eventually(grouped)
    by_port = {s["ports"][0]["port"]: [a["ip"] for a in s["addresses"]] for s in subsets}
    assert by_port == {8080: ["10.42.0.20"], 9090: ["10.42.0.21"]}
    assert all("notReadyAddresses" not in s for s in subsets)


async def test_selectorless_endpoints_are_left_alone_and_deleted_with_service(client, start_controllers) -> None:
    await start_controllers("endpoints")
    await client.create(SERVICES, {"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 5432}]}}, "default")
    manual = {"metadata": {"name": "ext"}, "subsets": [{"addresses": [{"ip": "198.18.0.5"}], "ports": [{"port": 5432}]}]}
    await client.create(ENDPOINTS, manual, "default")
    await client.create(SERVICES, service(), "default")
    await eventually(lambda: get_endpoints(client))  # the controller has run for "web"
    ep = await get_endpoints(client, "ext")
    assert ep["subsets"][0]["addresses"] == [{"ip": "198.18.0.5"}]
    await client.delete(SERVICES, "web", "default")

    async def gone() -> bool:
        return await get_endpoints(client) == {}

    await eventually(gone)

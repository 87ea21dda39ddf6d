"""The EndpointSlice controller over a real registry; the test plays the kubelet."""

from __future__ import annotations

import asyncio

from sampan.client.interface import ENDPOINTSLICES, PODS, SERVICES
from sampan.controllers.endpointslice import CONTROLLER_NAME, MANAGED_BY, SERVICE_NAME
from tests.controllers.conftest import eventually
from tests.controllers.test_endpoints import pod, run_pod, service


async def slices(client, name: str = "web") -> list[dict]:
    listed = await client.list(ENDPOINTSLICES, "default", label_selector=f"{SERVICE_NAME}={name}")
    return listed["items"]


async def test_slice_conditions_labels_and_owner(client, start_controllers) -> None:
    await start_controllers("endpointslice")
    svc = await client.create(SERVICES, service(), "default")
    for name in ("a", "b"):
        await client.create(PODS, pod(name), "default")
    await run_pod(client, "a", "10.42.1.10")
    await run_pod(client, "b", "10.42.1.11", ready=False)

    async def two_endpoints() -> list | None:
        found = await slices(client)
        return found if len(found) == 1 and len(found[0].get("endpoints") or []) == 2 else None

    (slice_,) = await eventually(two_endpoints)
    assert slice_["addressType"] == "IPv4"
    labels = slice_["metadata"]["labels"]
    assert labels[SERVICE_NAME] == "web" and labels[MANAGED_BY] == CONTROLLER_NAME and labels["tier"] == "front"
    owner = slice_["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Service" and owner["uid"] == svc["metadata"]["uid"] and owner["controller"] is True
    assert slice_["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    a, b = slice_["endpoints"]
    assert a["addresses"] == ["10.42.1.10"] and a["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert b["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert a["targetRef"]["name"] == "a" and a["nodeName"] == "node-1"
    assert "endpoints.kubernetes.io/last-change-trigger-time" in slice_["metadata"]["annotations"]

    # A terminating pod stays, marked terminating (a node would still be running it).
    await client.patch(PODS, "a", {"metadata": {"finalizers": ["test/hold"]}}, "merge", "default")
    await client.delete(PODS, "a", "default")

    async def terminating() -> bool:
        eps = (await slices(client))[0]["endpoints"]
        return eps[0]["conditions"] == {"ready": False, "serving": True, "terminating": True}

    await eventually(terminating)
    await client.patch(PODS, "a", {"metadata": {"finalizers": None}}, "merge", "default")


async def test_many_pods_split_into_slices_of_100(client, start_controllers) -> None:
    await start_controllers("endpointslice")
    await client.create(SERVICES, service(), "default")

    async def make(i: int) -> None:
        await client.create(PODS, pod(f"p{i}"), "default")
        await run_pod(client, f"p{i}", f"10.42.{2 + i // 200}.{i % 200 + 1}")

    await asyncio.gather(*(make(i) for i in range(250)))

    async def split() -> list | None:
        found = await slices(client)
        sizes = sorted(len(s.get("endpoints") or []) for s in found)
        return found if sum(sizes) == 250 and sizes == [50, 100, 100] else None

    found = await eventually(split, timeout=30)
    addresses = [e["addresses"][0] for s in found for e in s["endpoints"]]
    assert len(set(addresses)) == 250


async def test_slices_removed_with_service_and_empty_slice_without_pods(client, start_controllers) -> None:
    await start_controllers("endpointslice")
    await client.create(SERVICES, service(), "default")

    async def empty_slice() -> bool:
        found = await slices(client)
        return len(found) == 1 and not found[0].get("endpoints")

    await eventually(empty_slice)
    await client.delete(SERVICES, "web", "default")

    async def none_left() -> bool:
        return await slices(client) == []

    await eventually(none_left)

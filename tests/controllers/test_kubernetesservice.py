"""The controller that keeps the ``kubernetes`` Service and its endpoints in place."""

from __future__ import annotations

from sampan.api.errors import APIError
from sampan.client.interface import ENDPOINTS, ENDPOINTSLICES, SERVICES
from sampan.controllers.base import ControllerOptions
from tests.controllers.conftest import eventually


async def get(client, ref) -> dict:
    try:
        return await client.get(ref, "kubernetes", "default")
    except APIError as exc:
        if exc.code == 404:
            return {}
        raise


async def test_recreated_and_repaired(client, start_controllers) -> None:
    options = ControllerOptions(extra={"apiserver": ("127.0.0.1", 6443)})
    await start_controllers("kubernetesservice", options=options)
    svc = await eventually(lambda: get(client, SERVICES))
    assert svc["spec"]["clusterIP"] == "10.43.0.1" and svc["spec"]["ports"][0]["targetPort"] == 6443
    await eventually(lambda: get(client, ENDPOINTSLICES))

    await client.delete(SERVICES, "kubernetes", "default")
    again = await eventually(lambda: get(client, SERVICES))
    assert again["spec"]["clusterIP"] == "10.43.0.1" and again["metadata"]["uid"] != svc["metadata"]["uid"]

    ep = await get(client, ENDPOINTS)
    ep["subsets"] = [{"addresses": [{"ip": "198.18.0.9"}], "ports": [{"name": "https", "port": 1, "protocol": "TCP"}]}]
    await client.update(ENDPOINTS, ep)

    async def repaired() -> bool:
        subsets = (await get(client, ENDPOINTS)).get("subsets") or []
        return subsets == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]

    await eventually(repaired)


async def test_idle_without_a_server(client, start_controllers) -> None:
    manager = await start_controllers("kubernetesservice")
    await manager.get("kubernetesservice").reconcile("default/kubernetes")
    assert await get(client, SERVICES) == {}

"""ResourceQuota: the controller's status and the admission plugin's refusals and charges,
including concurrent creates that must not overshoot the quota."""

from __future__ import annotations

import asyncio

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import CONFIGMAPS, PODS, SECRETS, SERVICES
from sampan.controllers.resourcequota import RESOURCEQUOTAS
from tests.controllers.conftest import eventually


def pod(name: str, cpu: str | None = "100m", memory: str | None = "64Mi") -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": requests}}]},
    }


async def make_quota(client, name: str, hard: dict[str, str], **spec: object) -> dict:
    await client.create(RESOURCEQUOTAS, {"metadata": {"name": name}, "spec": {"hard": hard, **spec}}, "default")

    async def counted() -> dict | None:
        got = await client.get(RESOURCEQUOTAS, name, "default")
        return got if set((got.get("status") or {}).get("used") or {}) == set(hard) else None

    return await eventually(counted)


async def test_status_counts_existing_objects(client, start_controllers) -> None:
    await client.create(PODS, pod("a", cpu="250m"), "default")
    await client.create(CONFIGMAPS, {"metadata": {"name": "cm"}}, "default")
    await client.create(SERVICES, {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}, "default")
    await start_controllers("resourcequota")
    quota = await make_quota(
        client,
        "q",
        {"pods": "10", "requests.cpu": "2", "requests.memory": "1Gi", "configmaps": "5", "services.nodeports": "3", "count/services": "4"},
    )
    assert quota["status"]["hard"]["requests.memory"] == "1Gi"
    used = quota["status"]["used"]
    assert used == {
        "pods": "1",
        "requests.cpu": "250m",
        "requests.memory": "64Mi",
        "configmaps": "1",
        "services.nodeports": "1",
        "count/services": "1",
    }
    await client.delete(PODS, "a", "default")

    async def released() -> bool:
        got = await client.get(RESOURCEQUOTAS, "q", "default")
        return got["status"]["used"]["pods"] == "0" and got["status"]["used"]["requests.cpu"] == "0"

    await eventually(released)


async def test_admission_refuses_over_quota_with_upstream_message(client, start_controllers) -> None:
    await start_controllers("resourcequota")
    await make_quota(client, "compute", {"pods": "2", "requests.cpu": "300m", "requests.memory": "1Gi"})
    await client.create(PODS, pod("a", cpu="200m"), "default")
    with pytest.raises(APIError) as exc:
        await client.create(PODS, pod("b", cpu="200m"), "default")
    assert exc.value.code == 403
    assert str(exc.value) == (
        'pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=200m, '
        "used: requests.cpu=200m, limited: requests.cpu=300m"
    )
    with pytest.raises(APIError) as exc:
        await client.create(PODS, pod("c", cpu=None, memory=None), "default")
    assert exc.value.code == 403
    assert "failed quota: compute: must specify requests.cpu for: c; requests.memory for: c" in str(exc.value)
    await client.create(PODS, pod("d", cpu="100m"), "default")
    with pytest.raises(APIError) as exc:
        await client.create(PODS, pod("e", cpu="1m"), "default")
    assert "exceeded quota: compute, requested: pods=1,requests.cpu=1m, used: pods=2,requests.cpu=300m" in str(exc.value)


async def test_concurrent_creates_never_exceed_quota(client, start_controllers) -> None:
    await start_controllers("resourcequota")
    await make_quota(client, "count", {"configmaps": "7"})

    async def create(i: int) -> bool:
        try:
            await client.create(CONFIGMAPS, {"metadata": {"name": f"cm{i}"}}, "default")
            return True
        except APIError as exc:
            assert exc.code == 403 and "exceeded quota: count" in str(exc)
            return False

    results = await asyncio.gather(*(create(i) for i in range(30)))
    assert results.count(True) == 7
    listed = await client.list(CONFIGMAPS, "default")
    assert len(listed["items"]) == 7


async def test_status_unknown_before_the_controller_counts(client) -> None:
    await client.create(RESOURCEQUOTAS, {"metadata": {"name": "new"}, "spec": {"hard": {"secrets": "1"}}}, "default")
    with pytest.raises(APIError) as exc:
        await client.create(SECRETS, {"metadata": {"name": "s"}}, "default")
    assert exc.value.code == 403 and "status unknown for quota: new, resources: secrets" in str(exc.value)


async def test_scoped_quota_counts_only_matching_pods(client, start_controllers) -> None:
    await start_controllers("resourcequota")
    await make_quota(client, "besteffort", {"pods": "1"}, scopes=["BestEffort"])
    await client.create(PODS, pod("burstable"), "default")
    await client.create(PODS, pod("be1", cpu=None, memory=None), "default")
    with pytest.raises(APIError) as exc:
        await client.create(PODS, pod("be2", cpu=None, memory=None), "default")
    assert "exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1" in str(exc.value)


async def test_service_type_change_is_charged(client, start_controllers) -> None:
    await start_controllers("resourcequota")
    await make_quota(client, "ports", {"services.nodeports": "1", "services.loadbalancers": "0"})
    await client.create(SERVICES, {"metadata": {"name": "s"}, "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}, "default")
    with pytest.raises(APIError) as exc:
        await client.patch(SERVICES, "s", {"spec": {"type": "NodePort"}}, "merge", "default")
    assert exc.value.code == 403
    assert "exceeded quota: ports, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1" in str(exc.value)
    live = await client.get(SERVICES, "s", "default")
    assert live["spec"]["type"] == "ClusterIP" and "nodePort" not in live["spec"]["ports"][0]
    with pytest.raises(APIError, match="services.loadbalancers=1"):
        await client.create(SERVICES, {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False, "ports": [{"port": 80}]}}, "default")

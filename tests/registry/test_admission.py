"""Admission plugins in the registry: the generic chain's order, and the LimitRanger."""

from __future__ import annotations

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import PERSISTENTVOLUMECLAIMS, PODS, ResourceRef
from sampan.client.local import LocalClient
from sampan.registry.admission import AdmissionPlugin, Attributes
from sampan.registry.limitranger import ANNOTATION
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore

LIMITRANGES = ResourceRef("", "v1", "limitranges")


@pytest.fixture
async def client() -> LocalClient:
    store = MemoryStore()
    await store.start()
    reg = Registry(store)
    await bootstrap(reg)
    yield LocalClient(reg)
    await store.close()


def pod(name: str, resources: dict | None = None, init: bool = False) -> dict:
    spec: dict = {"containers": [{"name": "app", "image": "nginx", "resources": resources or {}}]}
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "busybox"}]
    return {"metadata": {"name": name}, "spec": spec}


async def limit_range(client: LocalClient, *items: dict) -> None:
    await client.create(LIMITRANGES, {"metadata": {"name": "limits"}, "spec": {"limits": list(items)}}, "default")


class _Recorder(AdmissionPlugin):
    """Sees the object after defaulting; refuses a label in the validating phase."""

    name = "test"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, object]] = []

    def handles(self, attrs: Attributes) -> bool:
        return attrs.resource == ("", "configmaps")

    async def admit(self, attrs: Attributes) -> None:
        self.seen.append(("admit", attrs.operation, attrs.obj.get("data")))
        attrs.obj.setdefault("metadata", {}).setdefault("labels", {})["admitted"] = "yes"

    async def validate(self, attrs: Attributes) -> None:
        self.seen.append(("validate", attrs.operation, (attrs.obj["metadata"].get("labels") or {}).get("admitted")))
        if (attrs.obj["metadata"].get("labels") or {}).get("refuse"):
            raise attrs.forbidden("refused by test")


async def test_chain_runs_mutating_then_validating(client: LocalClient) -> None:
    from sampan.client.interface import CONFIGMAPS

    recorder = _Recorder()
    client.registry.admission.plugins.append(recorder)
    out = await client.create(CONFIGMAPS, {"metadata": {"name": "a"}, "data": {"k": "v"}}, "default")
    assert out["metadata"]["labels"]["admitted"] == "yes"
    await client.patch(CONFIGMAPS, "a", {"data": {"k": "w"}}, "merge", "default")
    assert recorder.seen == [
        ("admit", "CREATE", {"k": "v"}),
        ("validate", "CREATE", "yes"),
        ("admit", "UPDATE", {"k": "w"}),
        ("validate", "UPDATE", "yes"),
    ]
    with pytest.raises(APIError) as exc:
        await client.create(CONFIGMAPS, {"metadata": {"name": "b", "labels": {"refuse": "1"}}}, "default")
    assert exc.value.code == 403 and str(exc.value) == 'configmaps "b" is forbidden: refused by test'


async def test_limitrange_defaults_requests_and_limits(client: LocalClient) -> None:
    await limit_range(client, {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m"}})
    out = await client.create(PODS, pod("a", init=True), "default")
    res = out["spec"]["containers"][0]["resources"]
    assert res["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert res["requests"] == {"cpu": "100m", "memory": "256Mi"}  # memory request defaults from the limit
    assert out["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] == "500m"
    assert out["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app; "
        "cpu, memory request for init container setup; cpu, memory limit for init container setup"
    )
    assert out["status"]["qosClass"] == "Burstable"
    # Stated values are kept.
    own = await client.create(PODS, pod("b", {"limits": {"cpu": "200m"}}), "default")
    assert own["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "200m", "memory": "256Mi"}


async def test_limitrange_min_max_ratio_refusals(client: LocalClient) -> None:
    await limit_range(
        client,
        {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "32Mi"}, "maxLimitRequestRatio": {"cpu": "2"}},
    )
    with pytest.raises(APIError) as exc:
        await client.create(PODS, pod("big", {"limits": {"cpu": "2", "memory": "64Mi"}, "requests": {"cpu": "2"}}), "default")
    assert exc.value.code == 403
    assert str(exc.value) == 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    with pytest.raises(APIError) as exc:
        await client.create(PODS, pod("ratio", {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "250m", "memory": "16Mi"}}), "default")
    assert str(exc.value) == (
        'pods "ratio" is forbidden: [minimum memory usage per Container is 32Mi, but request is 16Mi, '
        "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000]"
    )
    ok = await client.create(PODS, pod("ok", {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "600m"}}), "default")
    assert ok["metadata"]["name"] == "ok"


async def test_limitrange_pod_and_claim_limits(client: LocalClient) -> None:
    await limit_range(
        client,
        {"type": "Pod", "max": {"memory": "1Gi"}},
        {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}, "min": {"storage": "1Gi"}},
    )
    two = pod("two", {"limits": {"memory": "768Mi"}})
    two["spec"]["containers"].append({"name": "side", "image": "nginx", "resources": {"limits": {"memory": "512Mi"}}})
    with pytest.raises(APIError) as exc:
        await client.create(PODS, two, "default")
    assert "maximum memory usage per Pod is 1Gi, but limit is 1280Mi" in str(exc.value)
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    with pytest.raises(APIError) as exc:
        await client.create(PERSISTENTVOLUMECLAIMS, claim, "default")
    assert str(exc.value) == (
        'persistentvolumeclaims "data" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi'
    )
    claim["spec"]["resources"]["requests"]["storage"] = "1Gi"
    await client.create(PERSISTENTVOLUMECLAIMS, claim, "default")

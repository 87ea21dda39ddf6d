"""StatefulSet controller: ordered creation, claims, scale-down order, partitioned rolling updates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sampan.client.interface import CONTROLLERREVISIONS, EVENTS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS
from tests.controllers.conftest import eventually
from tests.controllers.kubelet import FakeKubelet, mark_running

NS = "default"


def stateful_set(replicas: int = 3, image: str = "nginx:1", **spec: object) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "serviceName": "web-svc",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


CLAIMS = [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]


@pytest.fixture
async def kubelet(client) -> AsyncIterator[FakeKubelet]:
    k = FakeKubelet(client).start()
    yield k
    await k.stop()


async def pod_names(client) -> list[str]:
    pods = (await client.list(PODS, NS))["items"]
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


async def names_are(client, *want: str) -> bool:
    return await pod_names(client) == sorted(want)


async def test_ordered_creation_waits_for_ready(client, start_controllers) -> None:
    await start_controllers("statefulset")
    await client.create(STATEFULSETS, stateful_set(3, volumeClaimTemplates=CLAIMS), NS)
    await eventually(lambda: names_are(client, "web-0"))
    pod = await client.get(PODS, "web-0", NS)
    labels = pod["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert labels["apps.kubernetes.io/pod-index"] == "0"
    assert labels["controller-revision-hash"].startswith("web-")
    assert pod["spec"]["hostname"] == "web-0" and pod["spec"]["subdomain"] == "web-svc"
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "www")
    assert volume["persistentVolumeClaim"]["claimName"] == "www-web-0"
    claim = await client.get(PERSISTENTVOLUMECLAIMS, "www-web-0", NS)
    assert claim["metadata"]["labels"]["app"] == "web"
    # Not ready yet: web-1 must not exist.
    assert await pod_names(client) == ["web-0"]
    await mark_running(client, pod)
    await eventually(lambda: names_are(client, "web-0", "web-1"))
    await mark_running(client, await client.get(PODS, "web-1", NS))
    await eventually(lambda: names_are(client, "web-0", "web-1", "web-2"))

    async def created_event() -> list[str]:
        return [e["message"] for e in (await client.list(EVENTS, NS))["items"] if e["reason"] == "SuccessfulCreate"]

    assert "create Pod web-0 in StatefulSet web successful" in await eventually(created_event)


async def test_scale_down_in_reverse_order(client, start_controllers, kubelet) -> None:
    await start_controllers("statefulset")
    await client.create(STATEFULSETS, stateful_set(3), NS)

    async def ready(n: int) -> bool:
        st = (await client.get(STATEFULSETS, "web", NS)).get("status", {})
        return st.get("readyReplicas") == n and st.get("replicas") == n

    await eventually(lambda: ready(3))
    kubelet.paused = True  # deletions stay pending until the kubelet confirms them
    await client.patch(STATEFULSETS, "web", {"spec": {"replicas": 1}}, "merge", NS)

    async def terminating() -> list[str]:
        pods = (await client.list(PODS, NS))["items"]
        return sorted(p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp"))

    assert await eventually(terminating) == ["web-2"]
    kubelet.paused = False
    await eventually(lambda: names_are(client, "web-0"))
    await eventually(lambda: ready(1))


async def test_parallel_creates_all_at_once(client, start_controllers) -> None:
    await start_controllers("statefulset")
    await client.create(STATEFULSETS, stateful_set(3, podManagementPolicy="Parallel"), NS)
    await eventually(lambda: names_are(client, "web-0", "web-1", "web-2"))


async def test_rolling_update_with_partition(client, start_controllers, kubelet) -> None:
    await start_controllers("statefulset")
    await client.create(STATEFULSETS, stateful_set(3), NS)

    async def status(**want: object) -> dict:
        sts = await client.get(STATEFULSETS, "web", NS)
        st = sts.get("status", {})
        ok = all(st.get(k) == v for k, v in want.items()) and st.get("observedGeneration") == sts["metadata"]["generation"]
        return st if ok else {}

    first = await eventually(lambda: status(readyReplicas=3, currentReplicas=3, updatedReplicas=3))
    assert first["currentRevision"] == first["updateRevision"]
    patch = {
        "spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}},
        }
    }
    await client.patch(STATEFULSETS, "web", patch, "strategic", NS)
    st = await eventually(lambda: status(readyReplicas=3, updatedReplicas=2, currentReplicas=1))
    assert st["currentRevision"] != st["updateRevision"]

    async def images() -> dict[str, str]:
        pods = (await client.list(PODS, NS))["items"]
        return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods}

    assert await images() == {"web-0": "nginx:1", "web-1": "nginx:2", "web-2": "nginx:2"}
    revisions = (await client.list(CONTROLLERREVISIONS, NS))["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]
    assert {r["metadata"]["name"] for r in revisions} == {st["currentRevision"], st["updateRevision"]}

    await client.patch(STATEFULSETS, "web", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, "strategic", NS)
    done = await eventually(lambda: status(readyReplicas=3, updatedReplicas=3, currentReplicas=3))
    assert done["currentRevision"] == done["updateRevision"] == st["updateRevision"]
    assert set((await images()).values()) == {"nginx:2"}


async def test_on_delete_waits_for_manual_deletion(client, start_controllers, kubelet) -> None:
    await start_controllers("statefulset")
    await client.create(STATEFULSETS, stateful_set(1, updateStrategy={"type": "OnDelete"}), NS)

    async def ready() -> dict:
        st = (await client.get(STATEFULSETS, "web", NS)).get("status", {})
        return st if st.get("readyReplicas") == 1 else {}

    await eventually(ready)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}
    await client.patch(STATEFULSETS, "web", patch, "strategic", NS)

    async def updated_revision_known() -> dict:
        st = (await client.get(STATEFULSETS, "web", NS)).get("status", {})
        return st if st.get("updateRevision") != st.get("currentRevision") else {}

    await eventually(updated_revision_known)
    assert (await client.get(PODS, "web-0", NS))["spec"]["containers"][0]["image"] == "nginx:1"
    await client.delete(PODS, "web-0", NS)

    async def replaced() -> bool:
        try:
            pod = await client.get(PODS, "web-0", NS)
        except Exception:
            return False
        return pod["spec"]["containers"][0]["image"] == "nginx:2"

    await eventually(replaced)


async def test_claim_retention_policy(client, start_controllers, kubelet) -> None:
    await start_controllers("statefulset")
    policy = {"whenDeleted": "Delete", "whenScaled": "Delete"}
    await client.create(
        STATEFULSETS, stateful_set(2, volumeClaimTemplates=CLAIMS, persistentVolumeClaimRetentionPolicy=policy), NS
    )

    async def ready(n: int) -> bool:
        st = (await client.get(STATEFULSETS, "web", NS)).get("status", {})
        return st.get("readyReplicas") == n and st.get("replicas") == n

    await eventually(lambda: ready(2))
    sts = await client.get(STATEFULSETS, "web", NS)
    claim = await client.get(PERSISTENTVOLUMECLAIMS, "www-web-1", NS)
    assert {"kind": "StatefulSet", "name": "web", "uid": sts["metadata"]["uid"]}.items() <= claim["metadata"]["ownerReferences"][0].items()
    pod_uid = (await client.get(PODS, "web-1", NS))["metadata"]["uid"]
    await client.patch(STATEFULSETS, "web", {"spec": {"replicas": 1}}, "merge", NS)

    async def handed_to_pod() -> bool:
        refs = (await client.get(PERSISTENTVOLUMECLAIMS, "www-web-1", NS))["metadata"].get("ownerReferences") or []
        return any(r["kind"] == "Pod" and r["uid"] == pod_uid for r in refs)

    await eventually(handed_to_pod)
    await eventually(lambda: ready(1))

"""Deployment controller with the ReplicaSet controller and a stand-in kubelet."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sampan.client.interface import DEPLOYMENTS, EVENTS, REPLICASETS
from sampan.controllers.util import deployments as du
from tests.controllers.conftest import eventually
from tests.controllers.kubelet import FakeKubelet

NS = "default"


def deployment(replicas: int = 3, image: str = "nginx:1", **spec: object) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


@pytest.fixture
async def kubelet(client) -> AsyncIterator[FakeKubelet]:
    k = FakeKubelet(client).start()
    yield k
    await k.stop()


async def sets_by_image(client) -> dict[str, dict]:
    items = (await client.list(REPLICASETS, NS))["items"]
    return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs for rs in items}


async def status_is(client, **want: int) -> dict:
    d = await client.get(DEPLOYMENTS, "web", NS)
    st = d.get("status", {})
    ok = all(st.get(k, 0) == v for k, v in want.items()) and st.get("observedGeneration") == d["metadata"]["generation"]
    return d if ok else {}


def condition(d: dict, type_: str) -> dict:
    return next(c for c in d["status"]["conditions"] if c["type"] == type_)


async def set_image(client, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
    await client.patch(DEPLOYMENTS, "web", patch, "strategic", NS)


async def test_creates_replica_set_and_becomes_available(client, start_controllers, kubelet) -> None:
    await start_controllers("deployment", "replicaset")
    await client.create(DEPLOYMENTS, deployment(3), NS)
    d = await eventually(lambda: status_is(client, replicas=3, updatedReplicas=3, readyReplicas=3, availableReplicas=3))
    (rs,) = (await client.list(REPLICASETS, NS))["items"]
    h = rs["metadata"]["labels"][du.HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", du.HASH_LABEL: h}
    ann = rs["metadata"]["annotations"]
    assert (ann[du.REVISION], ann[du.DESIRED_REPLICAS], ann[du.MAX_REPLICAS]) == ("1", "3", "4")
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"

    async def complete() -> dict:
        d = await client.get(DEPLOYMENTS, "web", NS)
        conds = {c["type"]: c["reason"] for c in d["status"].get("conditions", [])}
        return d if conds == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"} else {}

    d = await eventually(complete)
    assert d["metadata"]["annotations"][du.REVISION] == "1"
    assert condition(d, "Progressing")["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'

    async def scaled_event() -> list[str]:
        return [e["message"] for e in (await client.list(EVENTS, NS))["items"] if e["reason"] == "ScalingReplicaSet"]

    assert f"Scaled up replica set web-{h} from 0 to 3" in await eventually(scaled_event)


async def test_rolling_update_respects_surge_and_unavailable(client, start_controllers, kubelet) -> None:
    await start_controllers("deployment", "replicaset")
    await client.create(DEPLOYMENTS, deployment(3), NS)
    await eventually(lambda: status_is(client, availableReplicas=3))
    kubelet.paused = True  # new pods never become ready
    await set_image(client, "nginx:2")

    async def surged() -> dict:
        sets = await sets_by_image(client)
        new = sets.get("nginx:2")
        return sets if new and new["spec"]["replicas"] == 1 else {}

    sets = await eventually(surged)
    # maxSurge 25% of 3 rounds up to 1, maxUnavailable rounds down to 0: the old set keeps 3.
    assert sets["nginx:1"]["spec"]["replicas"] == 3
    assert sets["nginx:2"]["metadata"]["annotations"][du.REVISION] == "2"
    kubelet.paused = False
    await eventually(lambda: status_is(client, replicas=3, updatedReplicas=3, availableReplicas=3))

    async def old_drained() -> dict:
        sets = await sets_by_image(client)
        return sets if sets["nginx:1"]["spec"]["replicas"] == 0 else {}

    sets = await eventually(old_drained)
    assert sets["nginx:2"]["spec"]["replicas"] == 3
    d = await client.get(DEPLOYMENTS, "web", NS)
    assert d["metadata"]["annotations"][du.REVISION] == "2"


async def test_rollback_to_old_template_reuses_replica_set(client, start_controllers, kubelet) -> None:
    await start_controllers("deployment", "replicaset")
    await client.create(DEPLOYMENTS, deployment(2), NS)
    await eventually(lambda: status_is(client, availableReplicas=2))
    await set_image(client, "nginx:2")
    await eventually(lambda: status_is(client, replicas=2, updatedReplicas=2, availableReplicas=2))
    await set_image(client, "nginx:1")

    async def back() -> dict:
        sets = await sets_by_image(client)
        old = sets["nginx:1"]
        return sets if old["spec"]["replicas"] == 2 and old["metadata"]["annotations"][du.REVISION] == "3" else {}

    sets = await eventually(back)
    assert len(sets) == 2
    assert sets["nginx:1"]["metadata"]["annotations"][du.REVISION_HISTORY] == "1"


async def test_recreate_scales_old_down_before_new(client, start_controllers, kubelet) -> None:
    await start_controllers("deployment", "replicaset")
    await client.create(DEPLOYMENTS, deployment(2, strategy={"type": "Recreate"}), NS)
    await eventually(lambda: status_is(client, availableReplicas=2))
    kubelet.paused = True  # terminating pods stay until the kubelet confirms
    await set_image(client, "nginx:2")

    async def old_down() -> dict:
        sets = await sets_by_image(client)
        return sets if sets["nginx:1"]["spec"]["replicas"] == 0 else {}

    sets = await eventually(old_down)
    assert "nginx:2" not in sets  # old pods still terminating: no new set yet
    kubelet.paused = False
    await eventually(lambda: status_is(client, replicas=2, updatedReplicas=2, availableReplicas=2))


async def test_pause_holds_template_changes(client, start_controllers, kubelet) -> None:
    await start_controllers("deployment", "replicaset")
    await client.create(DEPLOYMENTS, deployment(1), NS)
    await eventually(lambda: status_is(client, availableReplicas=1))
    await client.patch(DEPLOYMENTS, "web", {"spec": {"paused": True}}, "merge", NS)
    await set_image(client, "nginx:2")

    async def paused() -> dict:
        d = await status_is(client)
        return d if d and condition(d, "Progressing")["reason"] == "DeploymentPaused" else {}

    await eventually(paused)
    assert set(await sets_by_image(client)) == {"nginx:1"}
    await client.patch(DEPLOYMENTS, "web", {"spec": {"paused": False}}, "merge", NS)
    await eventually(lambda: status_is(client, updatedReplicas=1, availableReplicas=1, replicas=1))
    assert set(await sets_by_image(client)) == {"nginx:1", "nginx:2"}


async def test_progress_deadline_exceeded(client, start_controllers) -> None:
    await start_controllers("deployment", "replicaset")
    await client.create(DEPLOYMENTS, deployment(1, progressDeadlineSeconds=1), NS)

    async def timed_out() -> dict:
        d = await client.get(DEPLOYMENTS, "web", NS)
        conds = {c["type"]: c for c in d.get("status", {}).get("conditions", [])}
        cond = conds.get("Progressing")
        return d if cond and cond["reason"] == "ProgressDeadlineExceeded" else {}

    d = await eventually(timed_out)
    cond = condition(d, "Progressing")
    assert cond["status"] == "False" and cond["message"].endswith("has timed out progressing.")
    assert condition(d, "Available")["reason"] == "MinimumReplicasUnavailable"


async def test_proportional_scaling_mid_rollout(client, start_controllers, kubelet) -> None:
    await start_controllers("deployment", "replicaset")
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    await client.create(DEPLOYMENTS, deployment(10, strategy=strategy), NS)
    await eventually(lambda: status_is(client, availableReplicas=10))
    kubelet.paused = True
    await set_image(client, "nginx:2")

    async def sizes(old: int, new: int) -> bool:
        sets = await sets_by_image(client)
        return "nginx:2" in sets and (sets["nginx:1"]["spec"]["replicas"], sets["nginx:2"]["spec"]["replicas"]) == (old, new)

    await eventually(lambda: sizes(8, 5))
    await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 20}}, "merge", NS)
    # 10 more (+3 surge) split 8:5 -> +6 old, +4 new.
    await eventually(lambda: sizes(14, 9))


async def test_revision_history_limit(client, start_controllers, kubelet) -> None:
    await start_controllers("deployment", "replicaset")
    await client.create(DEPLOYMENTS, deployment(1, revisionHistoryLimit=1), NS)
    for image in ("nginx:2", "nginx:3"):
        await eventually(lambda: status_is(client, replicas=1, updatedReplicas=1, availableReplicas=1))
        await set_image(client, image)

    async def pruned() -> dict:
        sets = await sets_by_image(client)
        return sets if set(sets) == {"nginx:2", "nginx:3"} else {}

    await eventually(pruned)


async def test_hash_collision_bumps_collision_count(client, start_controllers, kubelet) -> None:
    await client.create(DEPLOYMENTS, deployment(1, paused=True), NS)
    stored = await client.get(DEPLOYMENTS, "web", NS)
    taken = f"web-{du.pod_template_hash(stored)}"
    squatter = {
        "metadata": {"name": taken},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "other"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    await client.create(REPLICASETS, squatter, NS)
    await start_controllers("deployment", "replicaset")
    await client.patch(DEPLOYMENTS, "web", {"spec": {"paused": False}}, "merge", NS)
    d = await eventually(lambda: status_is(client, availableReplicas=1, updatedReplicas=1))
    assert d["status"]["collisionCount"] == 1
    names = {rs["metadata"]["name"] for rs in (await client.list(REPLICASETS, NS))["items"]}
    assert taken in names and len(names) == 2


def test_fenceposts_round_like_upstream() -> None:
    def fence(replicas: int, surge: object, unavailable: object) -> tuple[int, int]:
        d = {"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}
        return du.resolve_fenceposts(d)

    assert fence(10, "25%", "25%") == (3, 2)  # surge rounds up, unavailable down
    assert fence(3, "25%", "25%") == (1, 0)
    assert fence(3, 0, 0) == (0, 1)  # never both zero
    assert fence(5, 2, "50%") == (2, 2)


def test_template_hash_is_stable() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    d = {"spec": {"template": template}, "status": {}}
    h = du.pod_template_hash(d)
    assert h == du.pod_template_hash({"spec": {"template": dict(reversed(list(template.items())))}, "status": {}})
    assert h != du.pod_template_hash({"spec": {"template": template}, "status": {"collisionCount": 1}})
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    # Pinned: a different value would rename every existing ReplicaSet after an upgrade.
    assert h == "5776f98846"

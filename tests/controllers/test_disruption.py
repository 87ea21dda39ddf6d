"""PodDisruptionBudget status and the eviction subresource that spends it."""

from __future__ import annotations

from typing import Any

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import DEPLOYMENTS, EVENTS, PODS, REPLICASETS, is_not_found
from sampan.controllers.disruption import PDBS
from tests.controllers.conftest import eventually

LABELS = {"app": "web"}


def template() -> dict[str, Any]:
    return {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


async def make_pod(client, name: str, ready: bool = True, owner: dict[str, Any] | None = None,
                   phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": LABELS}
    if owner is not None:
        meta["ownerReferences"] = [{
            "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True,
        }]
    await client.create(PODS, {"metadata": meta, "spec": template()["spec"]}, "default")
    status = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    return await client.patch(PODS, name, {"status": status}, "merge", "default", subresource="status")


async def make_pdb(client, name: str = "web", **spec: Any) -> dict[str, Any]:
    body = {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": LABELS}, **spec}}
    return await client.create(PDBS, body, "default")


async def status_of(client, name: str = "web", **expected: Any) -> dict[str, Any] | None:
    pdb = await client.get(PDBS, name, "default")
    status = pdb.get("status") or {}
    if status.get("observedGeneration") != pdb["metadata"]["generation"]:
        return None
    return status if all(status.get(k) == v for k, v in expected.items()) else None


async def evict(client, name: str) -> dict[str, Any]:
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}}
    return await client.create(PODS, body, "default", subresource="eviction")


def allowed_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")


async def gone(client, name: str) -> bool:
    try:
        await client.get(PODS, name, "default")
    except APIError as exc:
        return is_not_found(exc)
    return False


async def test_min_available_status_and_eviction(client, start_controllers) -> None:
    for i in range(3):
        await make_pod(client, f"web-{i}")
    await make_pdb(client, minAvailable=2)
    await start_controllers("disruption")
    status = await eventually(lambda: status_of(client, currentHealthy=3, disruptionsAllowed=1))
    assert (status["desiredHealthy"], status["expectedPods"]) == (2, 3)
    cond = allowed_condition(status)
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")

    result = await evict(client, "web-0")
    assert result["status"] == "Success"
    assert await gone(client, "web-0")
    status = await eventually(lambda: status_of(client, currentHealthy=2, disruptionsAllowed=0))
    assert allowed_condition(status)["reason"] == "InsufficientPods"

    with pytest.raises(APIError) as caught:
        await evict(client, "web-1")
    err = caught.value
    assert err.code == 429 and err.reason == "TooManyRequests"
    assert err.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert err.status["details"]["causes"] == [
        {"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}
    ]
    assert not (await client.get(PODS, "web-1", "default"))["metadata"].get("deletionTimestamp")

    # Another healthy pod frees one disruption again.
    await make_pod(client, "web-3")
    await eventually(lambda: status_of(client, currentHealthy=3, disruptionsAllowed=1))
    await evict(client, "web-1")
    assert await gone(client, "web-1")


async def test_eviction_records_disrupted_pod_atomically(client, registry) -> None:
    """Without the controller, the budget written by the eviction is what stays."""
    await make_pod(client, "a")
    await make_pod(client, "b")
    pdb = await make_pdb(client, minAvailable=1)
    status = {"currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2, "disruptionsAllowed": 1,
              "observedGeneration": pdb["metadata"]["generation"]}
    await client.patch(PDBS, "web", {"status": status}, "merge", "default", subresource="status")
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a", "namespace": "default"}}
    await client.create(PODS, body, "default", dry_run=True, subresource="eviction")
    assert (await client.get(PDBS, "web", "default"))["status"]["disruptionsAllowed"] == 1
    assert not await gone(client, "a")
    await evict(client, "a")
    after = (await client.get(PDBS, "web", "default"))["status"]
    assert after["disruptionsAllowed"] == 0
    assert list(after["disruptedPods"]) == ["a"]
    with pytest.raises(APIError) as caught:
        await evict(client, "b")
    assert caught.value.code == 429


async def test_max_unavailable_uses_controller_scale(client, start_controllers) -> None:
    deployment = await client.create(DEPLOYMENTS, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 5, "selector": {"matchLabels": LABELS}, "template": template()},
    }, "default")
    rs_body = {
        "metadata": {"name": "web-abc", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deployment["metadata"]["uid"],
            "controller": True}]},
        "spec": {"replicas": 5, "selector": {"matchLabels": LABELS}, "template": template()},
    }
    rs = await client.create(REPLICASETS, rs_body, "default")
    for i in range(4):
        await make_pod(client, f"web-abc-{i}", owner=rs)
    await make_pdb(client, maxUnavailable="25%")
    await make_pdb(client, "half", minAvailable="50%")
    await start_controllers("disruption")
    # 25% of 5 rounds up to 2 unavailable: 3 must stay healthy, 4 are.
    status = await eventually(lambda: status_of(client, expectedPods=5, desiredHealthy=3))
    assert (status["currentHealthy"], status["disruptionsAllowed"]) == (4, 1)
    # 50% of 5 rounds up to 3.
    half = await eventually(lambda: status_of(client, "half", expectedPods=5, desiredHealthy=3))
    assert half["disruptionsAllowed"] == 1


async def test_uncountable_pods(client, start_controllers) -> None:
    await make_pod(client, "loose")
    await make_pdb(client, maxUnavailable=1)
    job_ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "1234", "controller": True}
    meta = {"name": "job-pod", "labels": {"app": "batch"}, "ownerReferences": [job_ref]}
    await client.create(PODS, {"metadata": meta, "spec": template()["spec"]}, "default")
    await client.create(PDBS, {"metadata": {"name": "batch"},
                               "spec": {"selector": {"matchLabels": {"app": "batch"}}, "maxUnavailable": 1}}, "default")
    await start_controllers("disruption")

    async def reasons() -> set[str]:
        events = (await client.list(EVENTS, "default"))["items"]
        found = {e["reason"] for e in events}
        return found if {"UnmanagedPods", "CalculateExpectedPodCountFailed"} <= found else set()

    await eventually(reasons)

    async def failed() -> dict[str, Any] | None:
        status = (await client.get(PDBS, "batch", "default")).get("status") or {}
        conditions = status.get("conditions") or []
        return status if conditions and conditions[0]["reason"] == "SyncFailed" else None

    status = await eventually(failed)
    assert status["disruptionsAllowed"] == 0
    assert allowed_condition(status)["message"] == 'found no controllers for pod "job-pod"'


async def test_unhealthy_pod_eviction_policies(client, start_controllers) -> None:
    await make_pod(client, "up-0")
    await make_pod(client, "up-1")
    await make_pod(client, "down-0", ready=False)
    await make_pod(client, "down-1", ready=False)
    await make_pdb(client, minAvailable=2)
    await start_controllers("disruption")
    await eventually(lambda: status_of(client, currentHealthy=2, disruptionsAllowed=0))
    # IfHealthyBudget: the budget is met, so an unready pod may go without spending it.
    await evict(client, "down-0")
    assert await gone(client, "down-0")
    with pytest.raises(APIError) as caught:
        await evict(client, "up-0")
    assert caught.value.code == 429

    # Now the budget is not met: unready pods are protected too, unless AlwaysAllow.
    await client.patch(PODS, "up-1", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                       "merge", "default", subresource="status")
    await eventually(lambda: status_of(client, currentHealthy=1))
    with pytest.raises(APIError):
        await evict(client, "down-1")
    await client.patch(PDBS, "web", {"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}}, "merge", "default")
    await evict(client, "down-1")
    assert await gone(client, "down-1")


async def test_pending_pods_and_conflicting_budgets(client) -> None:
    await make_pod(client, "waiting", phase="Pending")
    await make_pod(client, "busy")
    await make_pdb(client, minAvailable=5)
    await make_pdb(client, "other", minAvailable=1)
    # A pending pod never counts against a budget.
    await evict(client, "waiting")
    assert await gone(client, "waiting")
    with pytest.raises(APIError) as caught:
        await evict(client, "busy")
    assert caught.value.code == 500
    assert "more than one PodDisruptionBudget" in caught.value.message


async def test_budget_not_yet_observed(client) -> None:
    await make_pod(client, "fresh")
    await make_pdb(client, minAvailable=0)
    with pytest.raises(APIError) as caught:
        await evict(client, "fresh")
    assert caught.value.code == 429
    assert "still being processed" in caught.value.status["details"]["causes"][0]["message"]

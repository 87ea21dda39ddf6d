"""Built-in kinds served at several versions over one storage: reads, lists, field
selectors, watches, updates and apply through either version see the same objects."""

from __future__ import annotations

import asyncio

import pytest

from sampan.api import errors
from sampan.registry.hooks import PATCH_APPLY, PATCH_MERGE
from sampan.registry.options import ListOptions, WriteOptions
from sampan.registry.registry import Registry


def _opts(manager: str = "test") -> WriteOptions:
    return WriteOptions(field_manager=manager)


def _new_event(name: str, target: str) -> dict:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "example.com/operator",
        "reportingInstance": "operator-1",
        "action": "Reconcile",
        "reason": "Reconciled",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": target},
        "note": f"{target} reconciled",
        "type": "Normal",
    }


async def test_event_written_through_either_api_is_seen_through_both(registry: Registry) -> None:
    new_api = registry.must("events.k8s.io", "v1", "events")
    core = registry.must("", "v1", "events")
    await new_api.create("default", _new_event("a", "cm-a"), _opts())
    got = await core.get("default", "a")
    assert got["apiVersion"] == "v1"
    assert got["involvedObject"]["name"] == "cm-a"
    assert got["message"] == "cm-a reconciled"
    assert got["reportingComponent"] == "example.com/operator"
    assert "note" not in got and "regarding" not in got

    old_style = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "b", "namespace": "default"},
        "involvedObject": {"kind": "ConfigMap", "namespace": "default", "name": "cm-b"},
        "reason": "Created",
        "message": "made",
        "source": {"component": "me"},
        "count": 2,
        "firstTimestamp": "2024-01-01T00:00:00Z",
        "lastTimestamp": "2024-01-01T00:00:00Z",
        "type": "Warning",
    }
    await core.create("default", old_style, _opts())
    seen = await new_api.get("default", "b")
    assert seen["apiVersion"] == "events.k8s.io/v1"
    assert seen["regarding"]["name"] == "cm-b"
    assert seen["deprecatedSource"] == {"component": "me"}
    assert seen["deprecatedCount"] == 2

    by_core = await core.list("default", ListOptions(field_selector="involvedObject.name=cm-a"))
    assert [e["metadata"]["name"] for e in by_core["items"]] == ["a"]
    by_new = await new_api.list("default", ListOptions(field_selector="regarding.name=cm-b"))
    assert [e["metadata"]["name"] for e in by_new["items"]] == ["b"]
    assert by_new["items"][0]["note"] == "made"


async def test_updates_and_watch_through_the_other_version(registry: Registry) -> None:
    new_api = registry.must("events.k8s.io", "v1", "events")
    core = registry.must("", "v1", "events")
    watch = await new_api.watch("default", ListOptions(resource_version="0"))
    await core.create(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "w", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
            "reason": "Pulled",
            "message": "pulled",
            "type": "Normal",
        },
        _opts(),
    )
    kind, obj = await asyncio.wait_for(watch.__anext__(), 5)
    assert (kind, obj["apiVersion"], obj["note"]) == ("ADDED", "events.k8s.io/v1", "pulled")
    patched, _ = await new_api.patch("default", "w", PATCH_MERGE, {"note": "pulled again"}, _opts())
    assert patched["note"] == "pulled again"
    kind, obj = await asyncio.wait_for(watch.__anext__(), 5)
    assert (kind, obj["note"]) == ("MODIFIED", "pulled again")
    assert (await core.get("default", "w"))["message"] == "pulled again"
    await watch.aclose()


def _hpa_v1(name: str, max_replicas: int, cpu: int) -> dict:
    """An autoscaling/v1 HPA of the Deployment of the same name."""
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "maxReplicas": max_replicas,
            "targetCPUUtilizationPercentage": cpu,
        },
    }


async def test_hpa_v1_and_v2_share_storage(registry: Registry) -> None:
    v1 = registry.must("autoscaling", "v1", "horizontalpodautoscalers")
    v2 = registry.must("autoscaling", "v2", "horizontalpodautoscalers")
    created = await v1.create("default", _hpa_v1("web", 5, 60), _opts())
    assert created["spec"]["targetCPUUtilizationPercentage"] == 60
    got = await v2.get("default", "web")
    assert got["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
    ]
    assert got["spec"]["minReplicas"] == 1  # v1 default kept
    # A v2 edit shows through v1: the memory metric rides in the annotation.
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
    }
    metrics = got["spec"]["metrics"] + [memory]
    await v2.patch("default", "web", PATCH_MERGE, {"spec": {"metrics": metrics}}, _opts())
    seen = await v1.get("default", "web")
    assert seen["spec"]["targetCPUUtilizationPercentage"] == 60
    assert "memory" in seen["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
    # An update through v1 keeps the v2-only metric.
    seen["spec"]["maxReplicas"] = 7
    await v1.update("default", "web", seen, _opts())
    after = await v2.get("default", "web")
    assert after["spec"]["maxReplicas"] == 7
    assert memory in after["spec"]["metrics"]
    assert "annotations" not in after["metadata"]
    listed = await v1.list("default", ListOptions())
    assert [h["apiVersion"] for h in listed["items"]] == ["autoscaling/v1"]


async def test_apply_through_v1_records_v1_manager(registry: Registry) -> None:
    v1 = registry.must("autoscaling", "v1", "horizontalpodautoscalers")
    v2 = registry.must("autoscaling", "v2", "horizontalpodautoscalers")
    body = _hpa_v1("api", 3, 50)
    obj, created = await v1.patch("default", "api", PATCH_APPLY, body, _opts("applier"))
    assert created
    entries = obj["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"], e["apiVersion"]) for e in entries] == [
        ("applier", "Apply", "autoscaling/v1")
    ]
    # Re-applying the same configuration is a no-op that still converts cleanly.
    again, created = await v1.patch("default", "api", PATCH_APPLY, body, _opts("applier"))
    assert not created and again["spec"]["targetCPUUtilizationPercentage"] == 50
    stored = await v2.get("default", "api")
    assert stored["metadata"]["managedFields"][0]["apiVersion"] == "autoscaling/v1"
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50


async def test_managers_are_judged_in_their_own_version(registry: Registry) -> None:
    v1 = registry.must("autoscaling", "v1", "horizontalpodautoscalers")
    v2 = registry.must("autoscaling", "v2", "horizontalpodautoscalers")
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}
    v1_config = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"scaleTargetRef": ref, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
    }
    await v1.patch("default", "w", PATCH_APPLY, v1_config, _opts("old-tool"))
    cpu70 = {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    v2_config = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"scaleTargetRef": ref, "maxReplicas": 3, "metrics": [cpu70]},
    }
    # The v1 applier owns targetCPUUtilizationPercentage, which is the v2 CPU metric.
    with pytest.raises(errors.APIError) as err:
        await v2.patch("default", "w", PATCH_APPLY, v2_config, _opts("new-tool"))
    assert err.value.code == 409
    assert "old-tool" in err.value.status["message"]
    assert "targetCPUUtilizationPercentage" in err.value.status["message"]

    # An ordinary v2 write that changes it takes the field away from the v1 manager.
    await v2.patch("default", "w", PATCH_MERGE, {"spec": {"metrics": [cpu70]}}, _opts("editor"))
    got = await v1.get("default", "w")
    old_tool = next(e for e in got["metadata"]["managedFields"] if e["manager"] == "old-tool")
    assert "f:targetCPUUtilizationPercentage" not in old_tool["fieldsV1"]["f:spec"]
    assert "f:maxReplicas" in old_tool["fieldsV1"]["f:spec"]

"""autoscaling/v1 <-> autoscaling/v2 HorizontalPodAutoscaler conversion like upstream."""

from __future__ import annotations

import json

from sampan.api import conversion
from sampan.api.conversion.autoscaling import BEHAVIOR, CONDITIONS, CURRENT_METRICS, METRICS, v1_to_v2, v2_to_v1

REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


def _resource(name: str, **target: object) -> dict:
    return {"type": "Resource", "resource": {"name": name, "target": dict(target)}}


def _v1(**spec: object) -> dict:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5, **spec},
    }


def test_cpu_percent_becomes_a_resource_metric() -> None:
    v2 = v1_to_v2(_v1(targetCPUUtilizationPercentage=60))
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
    ]
    assert "targetCPUUtilizationPercentage" not in v2["spec"]
    assert v2_to_v1(v2) == _v1(targetCPUUtilizationPercentage=60)


def test_no_target_gets_upstream_default_of_80_percent() -> None:
    v2 = v1_to_v2(_v1())
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


V2_FULL = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "default", "annotations": {"keep": "me"}},
    "spec": {
        "scaleTargetRef": REF,
        "minReplicas": 2,
        "maxReplicas": 10,
        "metrics": [
            _resource("memory", type="AverageValue", averageValue="100Mi"),
            {
                "type": "Pods",
                "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}},
            },
            {
                "type": "Object",
                "object": {
                    "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                    "metric": {"name": "requests"},
                    "target": {"type": "Value", "value": "10k"},
                },
            },
            {
                "type": "External",
                "external": {
                    "metric": {"name": "queue", "selector": {"matchLabels": {"q": "a"}}},
                    "target": {"type": "AverageValue", "averageValue": "30"},
                },
            },
            _resource("cpu", type="Utilization", averageUtilization=70),
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
    },
    "status": {
        "currentReplicas": 3,
        "desiredReplicas": 4,
        "currentMetrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 55, "averageValue": "200m"}},
            },
        ],
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}],
    },
}


def test_v2_to_v1_keeps_other_metrics_in_annotations() -> None:
    v1 = v2_to_v1(V2_FULL)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    annotations = v1["metadata"]["annotations"]
    assert annotations["keep"] == "me"
    others = json.loads(annotations[METRICS])
    assert others[0] == {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}
    assert others[1] == {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "1k"}}
    assert others[2]["object"] == {
        "target": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
        "metricName": "requests",
        "targetValue": "10k",
    }
    assert others[3]["external"] == {
        "metricName": "queue",
        "metricSelector": {"matchLabels": {"q": "a"}},
        "targetAverageValue": "30",
    }
    assert json.loads(annotations[CURRENT_METRICS]) == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "currentAverageUtilization": 55, "currentAverageValue": "200m"},
        }
    ]
    assert json.loads(annotations[BEHAVIOR]) == V2_FULL["spec"]["behavior"]
    assert json.loads(annotations[CONDITIONS]) == V2_FULL["status"]["conditions"]
    assert v1["status"] == {"currentReplicas": 3, "desiredReplicas": 4, "currentCPUUtilizationPercentage": 55}


def test_v2_round_trips_through_v1() -> None:
    back = v1_to_v2(v2_to_v1(V2_FULL))
    # Other metrics first, the CPU target last: the order upstream's conversion gives.
    assert back["spec"]["metrics"] == V2_FULL["spec"]["metrics"]
    assert back["spec"]["behavior"] == V2_FULL["spec"]["behavior"]
    assert back["status"] == V2_FULL["status"]
    assert back["metadata"]["annotations"] == {"keep": "me"}


def test_stale_round_trip_annotations_are_replaced() -> None:
    v2 = json.loads(json.dumps(V2_FULL))
    v2["metadata"]["annotations"][METRICS] = "[]"
    v2["spec"]["metrics"] = v2["spec"]["metrics"][-1:]
    v1 = v2_to_v1(v2)
    assert METRICS not in v1["metadata"]["annotations"]


def test_broken_annotation_is_ignored() -> None:
    v1 = _v1(targetCPUUtilizationPercentage=50)
    v1["metadata"]["annotations"] = {METRICS: "{not json"}
    v2 = v1_to_v2(v1)
    assert [m["resource"]["name"] for m in v2["spec"]["metrics"]] == ["cpu"]
    assert "annotations" not in v2["metadata"]


def test_registered_with_v2_storage() -> None:
    conv = conversion.lookup("autoscaling", "HorizontalPodAutoscaler")
    assert conv is not None and conv.storage_version == "autoscaling/v2"
    stored = conv.to_storage(_v1(targetCPUUtilizationPercentage=60), "autoscaling/v1")
    assert stored["apiVersion"] == "autoscaling/v2"
    assert conv.from_storage(stored, "autoscaling/v1")["spec"]["targetCPUUtilizationPercentage"] == 60

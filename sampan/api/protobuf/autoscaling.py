"""autoscaling/v1 HorizontalPodAutoscaler (what `kubectl autoscale` sends)."""

from __future__ import annotations

from .meta import OBJECT_META, TIME
from .schema import INT32, INT64, PTR, REQ, STR, Message

CROSS_VERSION_OBJECT_REFERENCE = Message("CrossVersionObjectReference", {
    1: ("kind", STR, REQ),
    2: ("name", STR, REQ),
    3: ("apiVersion", STR),
})

HORIZONTAL_POD_AUTOSCALER_V1 = Message("HorizontalPodAutoscaler", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("HorizontalPodAutoscalerSpec", {
        1: ("scaleTargetRef", CROSS_VERSION_OBJECT_REFERENCE, REQ),
        2: ("minReplicas", INT32, PTR),
        3: ("maxReplicas", INT32, REQ),
        4: ("targetCPUUtilizationPercentage", INT32, PTR),
    })),
    3: ("status", Message("HorizontalPodAutoscalerStatus", {
        1: ("observedGeneration", INT64, PTR),
        2: ("lastScaleTime", TIME, PTR),
        3: ("currentReplicas", INT32, REQ),
        4: ("desiredReplicas", INT32, REQ),
        5: ("currentCPUUtilizationPercentage", INT32, PTR),
    })),
})

"""autoscaling/v1 <-> autoscaling/v2 HorizontalPodAutoscaler (stored as v2, like upstream).

v1 has one CPU utilization target; every other v2 metric, the current metrics, the
conditions and the behavior travel in v1 annotations (JSON in the v1 MetricSpec /
MetricStatus shapes), so a v2 object survives a round trip through v1.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from sampan.api.conversion import KindConversion, Obj, base, register

V1 = "autoscaling/v1"
V2 = "autoscaling/v2"
METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
_ROUND_TRIP = (METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR)
DEFAULT_CPU_UTILIZATION = 80

_SOURCE_KEYS = {
    "Object": "object",
    "Pods": "pods",
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "External": "external",
}


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _set(out: Obj, key: str, value: Any) -> None:
    if value is not None:
        out[key] = copy.deepcopy(value)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- metrics: v2 <-> the v1 (annotation) shape --------------------------------------------
# A MetricSpec holds a "target" and a MetricStatus a "current"; v1 spells the same fields with
# that word as prefix (targetAverageValue / currentAverageValue), so one pair of functions
# converts both, given ``which`` ("target" or "current").
def _amount(which: str, default_type: str, value: Any = None, average_value: Any = None, utilization: Any = None) -> Obj:
    out: Obj = {}
    if which == "target":
        if utilization is not None:
            out["type"] = "Utilization"
        elif average_value is not None:
            out["type"] = "AverageValue"
        else:
            out["type"] = "Value" if value is not None else default_type
    _set(out, "value", value)
    _set(out, "averageValue", average_value)
    _set(out, "averageUtilization", utilization)
    return out


def _metric(name: Any, selector: Any) -> Obj:
    out: Obj = {"name": name or ""}
    _set(out, "selector", selector)
    return out


def _metric_v1_to_v2(m: Obj, which: str) -> Obj:
    kind = m.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        src = _dict(m.get(_SOURCE_KEYS[kind]))
        res: Obj = {"name": src.get("name", "")}
        if kind == "ContainerResource":
            res["container"] = src.get("container", "")
        res[which] = _amount(
            which,
            "AverageValue",
            average_value=src.get(f"{which}AverageValue"),
            utilization=src.get(f"{which}AverageUtilization"),
        )
        out[_SOURCE_KEYS[kind]] = res
    elif kind == "Pods":
        src = _dict(m.get("pods"))
        out["pods"] = {
            "metric": _metric(src.get("metricName"), src.get("selector")),
            which: _amount(which, "AverageValue", average_value=src.get(f"{which}AverageValue")),
        }
    elif kind == "Object":
        src = _dict(m.get("object"))
        out["object"] = {
            "describedObject": copy.deepcopy(_dict(src.get("target"))),
            "metric": _metric(src.get("metricName"), src.get("selector")),
            which: _amount(which, "Value", src.get(f"{which}Value"), src.get("averageValue")),
        }
    elif kind == "External":
        src = _dict(m.get("external"))
        out["external"] = {
            "metric": _metric(src.get("metricName"), src.get("metricSelector")),
            which: _amount(which, "Value", src.get(f"{which}Value"), src.get(f"{which}AverageValue")),
        }
    return out


def _metric_v2_to_v1(m: Obj, which: str) -> Obj:
    kind = m.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        src = _dict(m.get(_SOURCE_KEYS[kind]))
        amount = _dict(src.get(which))
        res: Obj = {"name": src.get("name", "")}
        if kind == "ContainerResource":
            res["container"] = src.get("container", "")
        _set(res, f"{which}AverageUtilization", amount.get("averageUtilization"))
        _set(res, f"{which}AverageValue", amount.get("averageValue"))
        out[_SOURCE_KEYS[kind]] = res
    elif kind == "Pods":
        src = _dict(m.get("pods"))
        metric, amount = _dict(src.get("metric")), _dict(src.get(which))
        pods: Obj = {"metricName": metric.get("name", "")}
        _set(pods, f"{which}AverageValue", amount.get("averageValue"))
        _set(pods, "selector", metric.get("selector"))
        out["pods"] = pods
    elif kind == "Object":
        src = _dict(m.get("object"))
        metric, amount = _dict(src.get("metric")), _dict(src.get(which))
        obj: Obj = {"target": copy.deepcopy(_dict(src.get("describedObject"))), "metricName": metric.get("name", "")}
        _set(obj, f"{which}Value", amount.get("value"))
        _set(obj, "selector", metric.get("selector"))
        _set(obj, "averageValue", amount.get("averageValue"))
        out["object"] = obj
    elif kind == "External":
        src = _dict(m.get("external"))
        metric, amount = _dict(src.get("metric")), _dict(src.get(which))
        ext: Obj = {"metricName": metric.get("name", "")}
        _set(ext, "metricSelector", metric.get("selector"))
        _set(ext, f"{which}Value", amount.get("value"))
        _set(ext, f"{which}AverageValue", amount.get("averageValue"))
        out["external"] = ext
    return out


def spec_v1_to_v2(m: Obj) -> Obj:
    return _metric_v1_to_v2(m, "target")


def spec_v2_to_v1(m: Obj) -> Obj:
    return _metric_v2_to_v1(m, "target")


def status_v1_to_v2(m: Obj) -> Obj:
    return _metric_v1_to_v2(m, "current")


def status_v2_to_v1(m: Obj) -> Obj:
    return _metric_v2_to_v1(m, "current")


def _is_cpu_utilization(m: Obj) -> bool:
    res = _dict(m.get("resource"))
    return (
        m.get("type") == "Resource"
        and res.get("name") == "cpu"
        and _dict(res.get("target")).get("averageUtilization") is not None
    )


# -- whole objects -----------------------------------------------------------------------
def v2_to_v1(obj: Obj) -> Obj:
    out = base(obj, V1, "HorizontalPodAutoscaler")
    meta = out.setdefault("metadata", {})
    annotations = {k: v for k, v in _dict(meta.get("annotations")).items() if k not in _ROUND_TRIP}
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]

    out_spec: Obj = {}
    _set(out_spec, "scaleTargetRef", spec.get("scaleTargetRef"))
    _set(out_spec, "minReplicas", spec.get("minReplicas"))
    _set(out_spec, "maxReplicas", spec.get("maxReplicas"))
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    if cpu is not None:
        out_spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"]["averageUtilization"]
    out["spec"] = out_spec

    others = [spec_v2_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if others:
        annotations[METRICS] = _json(others)
    current = [m for m in status.get("currentMetrics") or [] if isinstance(m, dict)]
    if current:
        # All of them, the CPU one too: v1's percentage alone loses the raw value.
        annotations[CURRENT_METRICS] = _json([status_v2_to_v1(m) for m in current])
    if spec.get("behavior") is not None:
        annotations[BEHAVIOR] = _json(spec["behavior"])
    if status.get("conditions"):
        annotations[CONDITIONS] = _json(status["conditions"])
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)

    if "status" in obj:
        out_status: Obj = {}
        for key in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"):
            _set(out_status, key, status.get(key))
        for m in current:
            res = _dict(m.get("resource"))
            utilization = _dict(res.get("current")).get("averageUtilization")
            if m.get("type") == "Resource" and res.get("name") == "cpu" and utilization is not None:
                out_status["currentCPUUtilizationPercentage"] = utilization
        out["status"] = out_status
    return out


def _load_list(annotations: Obj, key: str) -> list[Obj] | None:
    raw = annotations.get(key)
    if not isinstance(raw, str):
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # like upstream: a broken annotation is ignored
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else None


def v1_to_v2(obj: Obj) -> Obj:
    out = base(obj, V2, "HorizontalPodAutoscaler")
    meta = out.setdefault("metadata", {})
    annotations = _dict(meta.get("annotations"))
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))

    out_spec: Obj = {}
    _set(out_spec, "scaleTargetRef", spec.get("scaleTargetRef"))
    _set(out_spec, "minReplicas", spec.get("minReplicas"))
    _set(out_spec, "maxReplicas", spec.get("maxReplicas"))
    metrics = [spec_v1_to_v2(m) for m in _load_list(annotations, METRICS) or []]
    if spec.get("targetCPUUtilizationPercentage") is not None:
        cpu_target = _amount("target", "Utilization", utilization=spec["targetCPUUtilizationPercentage"])
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": cpu_target}})
    if not metrics:
        # v1's implicit default, made explicit (upstream does it here too).
        cpu_target = _amount("target", "Utilization", utilization=DEFAULT_CPU_UTILIZATION)
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": cpu_target}}]
    out_spec["metrics"] = metrics
    behavior = annotations.get(BEHAVIOR)
    if isinstance(behavior, str):
        try:
            parsed = orjson.loads(behavior)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            out_spec["behavior"] = parsed
    out["spec"] = out_spec

    if "status" in obj or annotations.get(CURRENT_METRICS) or annotations.get(CONDITIONS):
        out_status: Obj = {}
        for key in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"):
            _set(out_status, key, status.get(key))
        current = _load_list(annotations, CURRENT_METRICS)
        if current:
            out_status["currentMetrics"] = [status_v1_to_v2(m) for m in current]
        elif status.get("currentCPUUtilizationPercentage") is not None:
            cpu_now = _amount("current", "", utilization=status["currentCPUUtilizationPercentage"])
            out_status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": cpu_now}}]
        conditions = _load_list(annotations, CONDITIONS)
        if conditions:
            out_status["conditions"] = conditions
        out["status"] = out_status

    rest = {k: v for k, v in annotations.items() if k not in _ROUND_TRIP}
    if rest:
        meta["annotations"] = rest
    else:
        meta.pop("annotations", None)
    return out


register(
    ("autoscaling",),
    "HorizontalPodAutoscaler",
    KindConversion(V2, {(V1, V2): v1_to_v2, (V2, V1): v2_to_v1}),
)

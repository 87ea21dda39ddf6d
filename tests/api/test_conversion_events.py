"""core/v1 <-> events.k8s.io/v1 Event conversion, field by field like upstream."""

from __future__ import annotations

from sampan.api import conversion
from sampan.api.conversion.events import core_to_events, events_to_core

CORE_EVENT = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "web.1", "namespace": "default", "resourceVersion": "7", "labels": {"a": "b"}},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1", "apiVersion": "v1"},
    "reason": "Started",
    "message": "Started container web",
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2024-01-01T00:00:00Z",
    "lastTimestamp": "2024-01-01T00:01:00Z",
    "count": 3,
    "type": "Normal",
    "eventTime": "2024-01-01T00:00:00.000000Z",
    "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
    "action": "Start",
    "related": {"kind": "Node", "name": "node-1"},
    "reportingComponent": "kubelet",
    "reportingInstance": "kubelet-node-1",
}


def test_core_to_events_maps_every_field() -> None:
    out = core_to_events(CORE_EVENT)
    assert out["apiVersion"] == "events.k8s.io/v1"
    assert out["regarding"] == CORE_EVENT["involvedObject"]
    assert out["note"] == "Started container web"
    assert out["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert out["deprecatedFirstTimestamp"] == "2024-01-01T00:00:00Z"
    assert out["deprecatedLastTimestamp"] == "2024-01-01T00:01:00Z"
    assert out["deprecatedCount"] == 3
    assert out["reportingController"] == "kubelet"
    for same in ("reportingInstance", "eventTime", "series", "action", "related", "type", "reason"):
        assert out[same] == CORE_EVENT[same]
    for core_only in ("involvedObject", "message", "source", "count", "reportingComponent"):
        assert core_only not in out
    assert out["metadata"] == CORE_EVENT["metadata"]


def test_round_trips_both_ways() -> None:
    assert events_to_core(core_to_events(CORE_EVENT)) == CORE_EVENT
    new_style = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "x", "namespace": "ns"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "kopf",
        "reportingInstance": "kopf-1",
        "action": "Reconcile",
        "reason": "Done",
        "regarding": {"kind": "Thing", "name": "t"},
        "note": "all good",
        "type": "Normal",
    }
    core = events_to_core(new_style)
    assert core["involvedObject"] == {"kind": "Thing", "name": "t"}
    assert core["message"] == "all good"
    assert core["reportingComponent"] == "kopf"
    assert core_to_events(core) == new_style


def test_converters_do_not_mutate_input() -> None:
    before = {**CORE_EVENT, "metadata": dict(CORE_EVENT["metadata"])}
    out = core_to_events(CORE_EVENT)
    out["metadata"]["name"] = "changed"
    out["regarding"]["name"] = "changed"
    assert CORE_EVENT == before


def test_registered_for_both_groups_stored_as_core() -> None:
    for group in ("", "events.k8s.io"):
        conv = conversion.lookup(group, "Event")
        assert conv is not None and conv.storage_version == "v1"
    conv = conversion.lookup("events.k8s.io", "Event")
    assert conv is not None
    stored = conv.to_storage(core_to_events(CORE_EVENT), "events.k8s.io/v1")
    assert stored == CORE_EVENT
    assert conv.from_storage(stored, "v1") is stored  # same version: no copy
    assert conv.from_storage(stored, "events.k8s.io/v1")["note"] == "Started container web"

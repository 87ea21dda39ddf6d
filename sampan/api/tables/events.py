"""Events, for both core/v1 and events.k8s.io/v1 (upstream prints both with one printer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .common import NAME, Column, Obj, as_int, name, register
from .humanize import since

EVENT = "core.v1.Event"
EVENT_COLUMNS = [
    Column("Last Seen", doc=(EVENT, "lastTimestamp")),
    Column("Type", doc=(EVENT, "type")),
    Column("Reason", doc=(EVENT, "reason")),
    Column("Object", doc=(EVENT, "involvedObject")),
    Column("Subobject", doc=("core.v1.ObjectReference", "fieldPath"), priority=1),
    Column("Source", doc=(EVENT, "source"), priority=1),
    Column("Message", doc=(EVENT, "message")),
    Column("First Seen", doc=(EVENT, "firstTimestamp"), priority=1),
    Column("Count", doc=(EVENT, "count"), priority=1),
    Column("Name", format="name", doc=NAME.doc, priority=1),
]


def _source(component: str, host: str) -> str:
    return f"{component}, {host}" if host else component


@register("", "events", EVENT_COLUMNS)
def event_row(ev: Obj, now: datetime) -> list[Any]:
    first = since(ev.get("firstTimestamp"), now) if ev.get("firstTimestamp") else since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = as_int(ev.get("count"))
    series = ev.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = as_int(series.get("count"))
    elif count == 0:
        count = 1  # events from the new API are singletons without a count
    involved = ev.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    return [
        last, ev.get("type", ""), ev.get("reason", ""), target, involved.get("fieldPath", ""),
        _source(source.get("component") or ev.get("reportingController") or "",
                source.get("host") or ev.get("reportingInstance") or ""),
        (ev.get("message") or "").strip(), first, count, name(ev),
    ]


@register("events.k8s.io", "events", EVENT_COLUMNS)
def new_event_row(ev: Obj, now: datetime) -> list[Any]:
    # The server converts these to core events before printing; map the renamed fields.
    core = {
        "metadata": ev.get("metadata") or {},
        "involvedObject": ev.get("regarding") or {},
        "message": ev.get("note", ""),
        "source": ev.get("deprecatedSource") or {},
        "firstTimestamp": ev.get("deprecatedFirstTimestamp"),
        "lastTimestamp": ev.get("deprecatedLastTimestamp"),
        "count": ev.get("deprecatedCount"),
        "eventTime": ev.get("eventTime"),
        "series": ev.get("series"),
        "type": ev.get("type", ""),
        "reason": ev.get("reason", ""),
        "reportingController": ev.get("reportingController", ""),
        "reportingInstance": ev.get("reportingInstance", ""),
    }
    return event_row(core, now)

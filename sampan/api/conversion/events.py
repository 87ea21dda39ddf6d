"""core/v1 Event <-> events.k8s.io/v1 Event (stored as core/v1, like upstream).

Field mapping as upstream's events/v1 conversion: regarding<->involvedObject,
note<->message, deprecatedSource<->source, deprecatedFirstTimestamp/LastTimestamp/Count
<->firstTimestamp/lastTimestamp/count, reportingController<->reportingComponent; the
others (reportingInstance, eventTime, series, action, related, type, reason) keep names.
"""

from __future__ import annotations

from sampan.api.conversion import KindConversion, Obj, base, copy_fields, register

CORE = "v1"
EVENTS = "events.k8s.io/v1"

# (core/v1 name, events.k8s.io/v1 name)
_FIELDS: tuple[tuple[str, str], ...] = (
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("type", "type"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)
_REVERSED = tuple((b, a) for a, b in _FIELDS)


def core_to_events(obj: Obj) -> Obj:
    out = base(obj, EVENTS, "Event")
    copy_fields(obj, out, _FIELDS)
    return out


def events_to_core(obj: Obj) -> Obj:
    out = base(obj, CORE, "Event")
    copy_fields(obj, out, _REVERSED)
    return out


register(
    ("", "events.k8s.io"),
    "Event",
    KindConversion(CORE, {(CORE, EVENTS): core_to_events, (EVENTS, CORE): events_to_core}),
)

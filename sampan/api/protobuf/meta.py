"""apimachinery types: meta/v1, runtime, intstr and resource.Quantity."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .schema import BOOL, INT64, MAP_STR, PTR, REQ, STR, Custom, Message, rep
from .wire import LEN, ProtobufError, iter_fields, to_signed64


def _fields(data: bytes) -> dict[int, Any]:
    """Flat view of a small message: last value per field number."""
    return {number: value for number, _, value in iter_fields(data)}


def _int(fields: dict[int, Any], number: int) -> int:
    value = fields.get(number, 0)
    return to_signed64(value) if isinstance(value, int) else 0


def _text(fields: dict[int, Any], number: int) -> str:
    value = fields.get(number, b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _timestamp(data: bytes) -> tuple[int, int] | None:
    if not data:
        return None  # Go writes nothing for the zero time, which JSON prints as null
    fields = _fields(data)
    return _int(fields, 1), _int(fields, 2)


def _utc(seconds: int, micros: int = 0) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micros)
    except (OverflowError, OSError, ValueError) as exc:
        raise ProtobufError(f"malformed message: timestamp out of range: {exc}") from None


def _decode_time(data: bytes) -> str | None:
    stamp = _timestamp(data)
    if stamp is None:
        return None
    # metav1.Time keeps whole seconds only (its JSON has no fraction).
    return _utc(stamp[0]).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode_micro_time(data: bytes) -> str | None:
    stamp = _timestamp(data)
    if stamp is None:
        return None
    seconds, nanos = stamp
    return _utc(seconds, nanos // 1000).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_duration(nanos: int) -> str:
    """Format nanoseconds like Go's time.Duration.String() ("1h0m0s", "1.5s", "300ms")."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    n = abs(nanos)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _fraction(n, size) + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def _decode_duration(data: bytes) -> str:
    return go_duration(_int(_fields(data), 1))


def _decode_int_or_string(data: bytes) -> int | str:
    fields = _fields(data)
    if _int(fields, 1) == 1:  # type 1 = String
        return _text(fields, 3)
    return _int(fields, 2)


def _decode_quantity(data: bytes) -> str:
    return _text(_fields(data), 1) or "0"  # the zero Quantity prints as "0"


def _decode_raw_json(data: bytes) -> Any:
    """RawExtension / FieldsV1: field 1 holds an embedded document."""
    raw = b""
    for number, wire_type, value in iter_fields(data):
        if number == 1 and wire_type == LEN:
            raw = value
    if not raw:
        return None
    if raw.startswith(b"k8s\x00"):
        from .decode import decode_request_body  # embedded protobuf object

        return decode_request_body(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ProtobufError(f"malformed message: embedded object is not JSON: {exc}") from None


def _decode_extra_value(data: bytes) -> list[str]:
    return [v.decode("utf-8", "replace") for n, w, v in iter_fields(data) if n == 1 and w == LEN]


TIME = Custom("Time", _decode_time)
MICRO_TIME = Custom("MicroTime", _decode_micro_time)
DURATION = Custom("Duration", _decode_duration)
INT_OR_STRING = Custom("IntOrString", _decode_int_or_string)
QUANTITY = Custom("Quantity", _decode_quantity)
RAW_EXTENSION = Custom("RawExtension", _decode_raw_json)
FIELDS_V1 = Custom("FieldsV1", _decode_raw_json)
EXTRA_VALUE = Custom("ExtraValue", _decode_extra_value)

TYPE_META = Message("TypeMeta", {1: ("apiVersion", STR), 2: ("kind", STR)})

UNKNOWN = Message("Unknown", {
    1: ("typeMeta", TYPE_META),
    2: ("raw", Custom("bytes", bytes)),
    3: ("contentEncoding", STR),
    4: ("contentType", STR),
})

OWNER_REFERENCE = Message("OwnerReference", {
    5: ("apiVersion", STR, REQ),
    1: ("kind", STR, REQ),
    3: ("name", STR, REQ),
    4: ("uid", STR, REQ),
    6: ("controller", BOOL, PTR),
    7: ("blockOwnerDeletion", BOOL, PTR),
})

MANAGED_FIELDS_ENTRY = Message("ManagedFieldsEntry", {
    1: ("manager", STR),
    2: ("operation", STR),
    3: ("apiVersion", STR),
    4: ("time", TIME, PTR),
    6: ("fieldsType", STR),
    7: ("fieldsV1", FIELDS_V1, PTR),
    8: ("subresource", STR),
})

OBJECT_META = Message("ObjectMeta", {
    1: ("name", STR),
    2: ("generateName", STR),
    3: ("namespace", STR),
    4: ("selfLink", STR),
    5: ("uid", STR),
    6: ("resourceVersion", STR),
    7: ("generation", INT64),
    8: ("creationTimestamp", TIME),
    9: ("deletionTimestamp", TIME, PTR),
    10: ("deletionGracePeriodSeconds", INT64, PTR),
    11: ("labels", MAP_STR),
    12: ("annotations", MAP_STR),
    13: ("ownerReferences", rep(OWNER_REFERENCE)),
    14: ("finalizers", rep(STR)),
    17: ("managedFields", rep(MANAGED_FIELDS_ENTRY)),
})

LABEL_SELECTOR_REQUIREMENT = Message("LabelSelectorRequirement", {
    1: ("key", STR, REQ),
    2: ("operator", STR, REQ),
    3: ("values", rep(STR)),
})

LABEL_SELECTOR = Message("LabelSelector", {
    1: ("matchLabels", MAP_STR),
    2: ("matchExpressions", rep(LABEL_SELECTOR_REQUIREMENT)),
})

PRECONDITIONS = Message("Preconditions", {
    1: ("uid", STR, PTR),
    2: ("resourceVersion", STR, PTR),
})

DELETE_OPTIONS = Message("DeleteOptions", {
    1: ("gracePeriodSeconds", INT64, PTR),
    2: ("preconditions", PRECONDITIONS, PTR),
    3: ("orphanDependents", BOOL, PTR),
    4: ("propagationPolicy", STR, PTR),
    5: ("dryRun", rep(STR)),
    6: ("ignoreStoreReadErrorWithClusterBreakingPotential", BOOL, PTR),
})

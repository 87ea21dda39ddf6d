"""A compact way to describe Kubernetes protobuf messages, and the decoder that uses it.

Each message is a table {field number: (json name, kind[, mode])}. The decoder
reproduces what Go's encoding/json prints for the Go struct that the message
unmarshals into, so the mode records the Go field's json behaviour:

- OMIT (default): a non-pointer field tagged omitempty. gogo-protobuf writes
  such fields even when they hold the zero value, so zero scalars and empty
  lists/maps are dropped again here.
- PTR: a pointer field. It is on the wire only when it was set, so whatever
  was sent is kept, zero values included.
- REQ: a field without omitempty. Kept when zero; when absent it gets the
  value Go would print (zero scalar, null for lists and maps).
- INLINE: an embedded struct whose fields Go's JSON flattens into the parent.

Message-typed fields are kept whenever present (Go never omits structs).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from .wire import LEN, VARINT, ProtobufError, iter_fields, iter_packed_varints, to_signed64, wire_name

OMIT, PTR, REQ, INLINE = "omit", "ptr", "req", "inline"


@dataclass(frozen=True)
class Scalar:
    name: str
    wire: int
    convert: Callable[[Any], Any]
    zero: Any


@dataclass(frozen=True)
class Custom:
    """A message shown in JSON as something else (a string, a number, raw JSON...)."""

    name: str
    decode: Callable[[bytes], Any]


@dataclass(frozen=True)
class Repeated:
    item: Kind


@dataclass(frozen=True)
class Map:
    key: Kind
    value: Kind


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    mode: str


class Message:
    def __init__(self, name: str, fields: dict[int, tuple]) -> None:
        self.name = name
        self.fields: dict[int, Field] = {
            number: Field(spec[0], spec[1], spec[2] if len(spec) > 2 else OMIT)
            for number, spec in fields.items()
        }

    def __repr__(self) -> str:
        return f"Message({self.name})"


Kind: TypeAlias = Scalar | Custom | Repeated | Map | Message


def _utf8(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtobufError(f"malformed message: string is not valid UTF-8: {exc}") from None


STR = Scalar("string", LEN, _utf8, "")
BYTES = Scalar("bytes", LEN, lambda v: base64.b64encode(v).decode("ascii"), "")  # as Go's JSON shows []byte
BOOL = Scalar("bool", VARINT, bool, False)
INT32 = Scalar("int32", VARINT, to_signed64, 0)
INT64 = Scalar("int64", VARINT, to_signed64, 0)


def rep(item: Kind) -> Repeated:
    return Repeated(item)


def map_of(value: Kind) -> Map:
    return Map(STR, value)


MAP_STR = map_of(STR)


def decode_message(message: Message, data: bytes) -> dict[str, Any]:
    """Decode data as message into a JSON-shaped dict; unknown field numbers are skipped."""
    values: dict[int, Any] = {}
    for number, wire_type, raw in iter_fields(data):
        field = message.fields.get(number)
        if field is None:
            continue
        kind = field.kind
        if isinstance(kind, Repeated):
            items = values.setdefault(number, [])
            item = kind.item
            if isinstance(item, Scalar) and item.wire == VARINT and wire_type == LEN:
                items.extend(item.convert(v) for v in iter_packed_varints(raw))  # packed encoding
            else:
                items.append(_decode_value(message, field, item, wire_type, raw))
        elif isinstance(kind, Map):
            _check_wire(message, field, LEN, wire_type)
            key, value = _decode_map_entry(message, field, kind, raw)
            values.setdefault(number, {})[key] = value
        else:
            values[number] = _decode_value(message, field, kind, wire_type, raw)

    out: dict[str, Any] = {}
    for number, field in message.fields.items():  # table order gives Go's key order
        if number not in values:
            if field.mode == REQ:
                out[field.name] = zero_value(field.kind)
            continue
        value = values[number]
        if field.mode == INLINE:
            out.update(value)
        elif field.mode == OMIT and _is_empty(field.kind, value):
            continue
        else:
            out[field.name] = value
    return out


def zero_value(kind: Kind) -> Any:
    """What Go's JSON prints for a field holding its zero value."""
    if isinstance(kind, Scalar):
        return kind.zero
    if isinstance(kind, (Repeated, Map)):
        return None
    if isinstance(kind, Custom):
        return kind.decode(b"")
    return decode_message(kind, b"")


def _is_empty(kind: Kind, value: Any) -> bool:
    if isinstance(kind, (Message, Custom)):
        return False
    if isinstance(value, (list, dict)):
        return not value
    return value == kind.zero if isinstance(kind, Scalar) else False


def _check_wire(message: Message, field: Field, expected: int, got: int) -> None:
    if expected != got:
        raise ProtobufError(
            f"malformed message: {message.name}.{field.name} has {wire_name(got)} encoding, "
            f"expected {wire_name(expected)}"
        )


def _decode_value(message: Message, field: Field, kind: Kind, wire_type: int, raw: Any) -> Any:
    if isinstance(kind, Scalar):
        _check_wire(message, field, kind.wire, wire_type)
        return kind.convert(raw)
    _check_wire(message, field, LEN, wire_type)
    if isinstance(kind, Custom):
        return kind.decode(raw)
    if isinstance(kind, Message):
        return decode_message(kind, raw)
    raise ProtobufError(f"schema error: {message.name}.{field.name} nests repeated/map kinds")


def _decode_map_entry(message: Message, field: Field, kind: Map, raw: bytes) -> tuple[Any, Any]:
    key: Any = None
    value: Any = None
    have_value = False
    for number, wire_type, item in iter_fields(raw):
        if number == 1:
            key = _decode_value(message, field, kind.key, wire_type, item)
        elif number == 2:
            value = _decode_value(message, field, kind.value, wire_type, item)
            have_value = True
    if key is None:
        key = zero_value(kind.key)
    if not have_value:
        value = zero_value(kind.value)
    return key, value

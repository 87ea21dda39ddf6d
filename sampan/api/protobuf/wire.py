"""Generic protocol-buffers wire-format reader.

Knows nothing about Kubernetes: it only splits a message into
(field number, wire type, value) triples.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LEN = 2
FIXED32 = 5

_WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LEN: "length-delimited", FIXED32: "fixed32"}


class ProtobufError(ValueError):
    """A protobuf request body could not be decoded."""


def wire_name(wire_type: int) -> str:
    return _WIRE_NAMES.get(wire_type, f"wire type {wire_type}")


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, new position) for the varint starting at pos."""
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ProtobufError("malformed message: truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("malformed message: varint longer than 10 bytes")


def to_signed64(value: int) -> int:
    """Reinterpret a varint as a two's-complement int64 (negative int32s use 10 bytes)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field in data.

    Varints are returned as unsigned ints, length-delimited fields as bytes,
    fixed-width fields as unsigned ints.
    """
    view = memoryview(data)
    pos = 0
    end = len(view)
    while pos < end:
        key, pos = read_varint(view, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("malformed message: field number 0")
        if wire_type == VARINT:
            value, pos = read_varint(view, pos)
            yield number, wire_type, value
        elif wire_type == LEN:
            size, pos = read_varint(view, pos)
            if pos + size > end:
                raise ProtobufError(f"malformed message: field {number} runs past the end")
            yield number, wire_type, bytes(view[pos : pos + size])
            pos += size
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise ProtobufError("malformed message: truncated fixed64")
            yield number, wire_type, int.from_bytes(view[pos : pos + 8], "little")
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise ProtobufError("malformed message: truncated fixed32")
            yield number, wire_type, int.from_bytes(view[pos : pos + 4], "little")
            pos += 4
        else:
            # Groups (3/4) are never produced by Kubernetes; anything else is garbage.
            raise ProtobufError(f"malformed message: unsupported wire type {wire_type} for field {number}")


def iter_packed_varints(data: bytes) -> Iterator[int]:
    """Yield the varints of a packed repeated field."""
    pos = 0
    while pos < len(data):
        value, pos = read_varint(data, pos)
        yield value

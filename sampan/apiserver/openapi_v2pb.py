"""The Swagger 2.0 document as protobuf (gnostic ``openapi.v2.Document``).

kubectl asks for ``/openapi/v2`` only as protobuf, and only when it validates on the
client: objects whose kind the v3 documents do not name, such as a ``v1 List`` in a
manifest. Only what kubectl reads is encoded: the document header and the definitions
(schemas with their ``x-`` extensions); paths are left out.
"""

from __future__ import annotations

import json
import struct
from typing import Any

# Upstream answers with this spelling; the "@" form kubectl asks for is no valid media type.
CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

# Schema keywords -> (field number, how to encode). Field numbers of gnostic's OpenAPIv2.proto.
_SCHEMA_FIELDS: dict[str, tuple[int, str]] = {
    "$ref": (1, "str"),
    "format": (2, "str"),
    "title": (3, "str"),
    "description": (4, "str"),
    "default": (5, "any"),
    "multipleOf": (6, "double"),
    "maximum": (7, "double"),
    "exclusiveMaximum": (8, "bool"),
    "minimum": (9, "double"),
    "exclusiveMinimum": (10, "bool"),
    "maxLength": (11, "int"),
    "minLength": (12, "int"),
    "pattern": (13, "str"),
    "maxItems": (14, "int"),
    "minItems": (15, "int"),
    "uniqueItems": (16, "bool"),
    "maxProperties": (17, "int"),
    "minProperties": (18, "int"),
    "required": (19, "strs"),
    "enum": (20, "anys"),
    "additionalProperties": (21, "additional"),
    "type": (22, "type"),
    "items": (23, "items"),
    "allOf": (24, "schemas"),
    "properties": (25, "properties"),
    "discriminator": (26, "str"),
    "readOnly": (27, "bool"),
    "example": (30, "any"),
}
_VENDOR_EXTENSION = 31


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values take ten bytes, like Go
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode()) if text else b""


def _any(number: int, value: Any) -> bytes:
    # gnostic keeps free-form values as YAML text; JSON is valid YAML.
    return _field(number, _string(2, json.dumps(value, separators=(",", ":"))))


def _named(number: int, name: str, value: bytes) -> bytes:
    return _field(number, _string(1, name) + _field(2, value))


def _encode_value(kind: str, number: int, value: Any) -> bytes:
    if kind == "str":
        return _string(number, str(value))
    if kind == "any":
        return _any(number, value)
    if kind == "double":
        return _varint(number << 3 | 1) + struct.pack("<d", float(value))
    if kind == "bool":
        return _varint(number << 3) + b"\x01" if value else b""
    if kind == "int":
        return _varint(number << 3) + _varint(int(value))
    if kind == "strs":
        return b"".join(_field(number, str(v).encode()) for v in value)
    if kind == "anys":
        return b"".join(_any(number, v) for v in value)
    if kind == "type":
        types = value if isinstance(value, list) else [value]
        return _field(number, b"".join(_field(1, str(t).encode()) for t in types))
    if kind == "items":
        schemas = value if isinstance(value, list) else [value]
        return _field(number, b"".join(_field(1, encode_schema(s)) for s in schemas))
    if kind == "schemas":
        return b"".join(_field(number, encode_schema(s)) for s in value)
    if kind == "properties":
        return _field(number, b"".join(_named(1, name, encode_schema(s)) for name, s in value.items()))
    if kind == "additional":
        if isinstance(value, bool):
            return _field(number, _varint(2 << 3) + (b"\x01" if value else b"\x00"))
        return _field(number, _field(1, encode_schema(value)))
    raise ValueError(f"unknown encoding {kind}")


def encode_schema(schema: Any) -> bytes:
    if not isinstance(schema, dict):
        return b""
    out = bytearray()
    for key, value in schema.items():
        if key.startswith("x-"):
            out += _field(_VENDOR_EXTENSION, _string(1, key) + _any(2, value))
        elif key in _SCHEMA_FIELDS and value is not None:
            number, kind = _SCHEMA_FIELDS[key]
            out += _encode_value(kind, number, value)
    return bytes(out)


def encode_document(doc: dict[str, Any]) -> bytes:
    info = doc.get("info") or {}
    header = _string(1, str(info.get("title", ""))) + _string(2, str(info.get("version", "")))
    definitions = b"".join(_named(1, name, encode_schema(schema))
                           for name, schema in (doc.get("definitions") or {}).items())
    return _string(1, str(doc.get("swagger", "2.0"))) + _field(2, header) + _field(9, definitions)

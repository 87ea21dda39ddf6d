"""The protobuf /openapi/v2 document decodes with gnostic's message layout."""

from __future__ import annotations

import json

import pytest

from sampan.apiserver import openapi, openapi_v2pb
from sampan.apiserver.resources import default_table

descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
from google.protobuf import descriptor_pool, message_factory  # noqa: E402

F = descriptor_pb2.FieldDescriptorProto

# The part of gnostic's OpenAPIv2.proto the encoder writes.
_MESSAGES = {
    "Document": [("swagger", 1, F.TYPE_STRING, False, ""), ("info", 2, F.TYPE_MESSAGE, False, "Info"),
                 ("definitions", 9, F.TYPE_MESSAGE, False, "Definitions")],
    "Info": [("title", 1, F.TYPE_STRING, False, ""), ("version", 2, F.TYPE_STRING, False, "")],
    "Definitions": [("additional_properties", 1, F.TYPE_MESSAGE, True, "NamedSchema")],
    "NamedSchema": [("name", 1, F.TYPE_STRING, False, ""), ("value", 2, F.TYPE_MESSAGE, False, "Schema")],
    "NamedAny": [("name", 1, F.TYPE_STRING, False, ""), ("value", 2, F.TYPE_MESSAGE, False, "Any")],
    "Any": [("yaml", 2, F.TYPE_STRING, False, "")],
    "TypeItem": [("value", 1, F.TYPE_STRING, True, "")],
    "ItemsItem": [("schema", 1, F.TYPE_MESSAGE, True, "Schema")],
    "Properties": [("additional_properties", 1, F.TYPE_MESSAGE, True, "NamedSchema")],
    "AdditionalPropertiesItem": [("schema", 1, F.TYPE_MESSAGE, False, "Schema"),
                                 ("boolean", 2, F.TYPE_BOOL, False, "")],
    "Schema": [("_ref", 1, F.TYPE_STRING, False, ""), ("format", 2, F.TYPE_STRING, False, ""),
               ("description", 4, F.TYPE_STRING, False, ""), ("default", 5, F.TYPE_MESSAGE, False, "Any"),
               ("maximum", 7, F.TYPE_DOUBLE, False, ""), ("max_length", 11, F.TYPE_INT64, False, ""),
               ("required", 19, F.TYPE_STRING, True, ""), ("enum", 20, F.TYPE_MESSAGE, True, "Any"),
               ("additional_properties", 21, F.TYPE_MESSAGE, False, "AdditionalPropertiesItem"),
               ("type", 22, F.TYPE_MESSAGE, False, "TypeItem"), ("items", 23, F.TYPE_MESSAGE, False, "ItemsItem"),
               ("all_of", 24, F.TYPE_MESSAGE, True, "Schema"), ("properties", 25, F.TYPE_MESSAGE, False, "Properties"),
               ("vendor_extension", 31, F.TYPE_MESSAGE, True, "NamedAny")],
}


def _document_class() -> type:
    proto = descriptor_pb2.FileDescriptorProto(name="openapiv2_test.proto", package="openapi.v2", syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        if name == "AdditionalPropertiesItem":
            message.oneof_decl.add(name="oneof")
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind,
                                      label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if name == "AdditionalPropertiesItem":
                field.oneof_index = 0
            if type_name:
                field.type_name = f".openapi.v2.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("openapi.v2.Document"))


def test_hand_written_schema_round_trips() -> None:
    doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "definitions": {
        "a.Thing": {
            "description": "A thing.", "type": "object", "required": ["name"],
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Thing", "version": "v1"}],
            "properties": {
                "name": {"type": "string", "maxLength": 63, "enum": ["x", "y"], "default": "x"},
                "size": {"type": "integer", "format": "int32", "maximum": 10.5},
                "tags": {"type": "array", "items": {"$ref": "#/definitions/a.Tag"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "additionalProperties": False},
                "both": {"allOf": [{"$ref": "#/definitions/a.Tag"}]},
            },
        },
    }}
    parsed = _document_class().FromString(openapi_v2pb.encode_document(doc))
    assert (parsed.swagger, parsed.info.title, parsed.info.version) == ("2.0", "Kubernetes", "v1.32.0")
    [named] = parsed.definitions.additional_properties
    thing = named.value
    assert named.name == "a.Thing" and thing.description == "A thing." and list(thing.type.value) == ["object"]
    assert list(thing.required) == ["name"]
    [ext] = thing.vendor_extension
    assert ext.name == "x-kubernetes-group-version-kind" and json.loads(ext.value.yaml)[0]["kind"] == "Thing"
    props = {p.name: p.value for p in thing.properties.additional_properties}
    assert props["name"].max_length == 63 and [json.loads(e.yaml) for e in props["name"].enum] == ["x", "y"]
    assert json.loads(props["name"].default.yaml) == "x"
    assert props["size"].format == "int32" and props["size"].maximum == 10.5
    assert props["tags"].items.schema[0]._ref == "#/definitions/a.Tag"
    assert list(props["labels"].additional_properties.schema.type.value) == ["string"]
    assert props["free"].additional_properties.WhichOneof("oneof") == "boolean"
    assert props["free"].additional_properties.boolean is False
    assert props["both"].all_of[0]._ref == "#/definitions/a.Tag"


def test_served_document_keeps_every_definition() -> None:
    doc = openapi.build_openapi_v2(list(default_table()))
    parsed = _document_class().FromString(openapi_v2pb.encode_document(doc))
    names = [d.name for d in parsed.definitions.additional_properties]
    assert names == list(doc["definitions"])
    deployment = next(d.value for d in parsed.definitions.additional_properties
                      if d.name == "io.k8s.api.apps.v1.Deployment")
    gvk = {e.name: json.loads(e.value.yaml) for e in deployment.vendor_extension}["x-kubernetes-group-version-kind"]
    assert gvk == [{"group": "apps", "kind": "Deployment", "version": "v1"}]

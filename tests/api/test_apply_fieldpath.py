"""Field sets and their FieldsV1 encoding."""

from __future__ import annotations

import pytest

from sampan.api.apply import fields_v1, parse_fields_v1, path_string
from sampan.api.apply.fieldpath import (
    go_json,
    index,
    key,
    make_path,
    recursive_difference,
    serialize_element,
    set_value,
)


def test_encoding_nests_members_and_marks_items_themselves() -> None:
    container = key({"name": "nginx"})
    port = key({"protocol": "TCP", "containerPort": 80})
    fieldset = {
        make_path("spec", "replicas"),
        make_path("spec", "template", "spec", "containers", container),
        make_path("spec", "template", "spec", "containers", container, "image"),
        make_path("spec", "template", "spec", "containers", container, "ports", port),
        make_path("spec", "template", "spec", "containers", container, "ports", port, "containerPort"),
    }
    assert fields_v1(fieldset) == {
        "f:spec": {
            "f:replicas": {},
            "f:template": {"f:spec": {"f:containers": {
                'k:{"name":"nginx"}': {
                    ".": {},
                    "f:image": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                },
            }}},
        },
    }
    assert parse_fields_v1(fields_v1(fieldset)) == fieldset


def test_order_follows_upstream_fields_then_keys_then_values() -> None:
    fieldset = {
        make_path("b"), make_path("a"),
        make_path("list", set_value("z")), make_path("list", set_value(3)),
        make_path("list", set_value(True)), make_path("list", index(0)),
        make_path("list", key({"k": "x"})), make_path("list", "f"),
    }
    encoded = fields_v1(fieldset)
    assert list(encoded) == ["f:a", "f:b", "f:list"]
    assert list(encoded["f:list"]) == ["f:f", 'k:{"k":"x"}', "v:3", 'v:"z"', "v:true", "i:0"]


def test_elements_serialise_like_go() -> None:
    assert serialize_element(set_value("a<b&c")) == 'v:"a\\u003cb\\u0026c"'
    assert serialize_element(set_value(1.0)) == "v:1"
    assert serialize_element(key({"port": 80, "name": "ü"})) == 'k:{"name":"ü","port":80}'
    assert go_json({"x": [1, "y"]}) == '{"x":[1,"y"]}'


def test_parse_real_apiserver_fields() -> None:
    raw = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:finalizers": {'v:"kubernetes"': {}}},
    }
    assert parse_fields_v1(raw) == {
        make_path("metadata", "labels"),
        make_path("metadata", "labels", "app"),
        make_path("spec", "finalizers", set_value("kubernetes")),
    }
    with pytest.raises(ValueError):
        parse_fields_v1({"x:bad": {}})


def test_path_strings_match_conflict_messages() -> None:
    assert path_string(make_path("spec", "replicas")) == ".spec.replicas"
    assert (path_string(make_path("spec", "containers", key({"name": "nginx"}), "image"))
            == '.spec.containers[name="nginx"].image')
    assert path_string(make_path("ports", key({"containerPort": 80, "protocol": "TCP"}))) == \
        '.ports[containerPort=80,protocol="TCP"]'
    assert path_string(make_path("finalizers", set_value("x"))) == '.finalizers[="x"]'


def test_recursive_difference_drops_subtrees() -> None:
    s = {make_path("status"), make_path("status", "phase"), make_path("spec", "x")}
    assert recursive_difference(s, {make_path("status")}) == {make_path("spec", "x")}

"""Hand-built bodies for what kubectl's recordings do not cover: zeros vs absence,
special apimachinery types, unknown fields and errors."""

from __future__ import annotations

import json

import pytest

from sampan.api.protobuf import MAGIC, ProtobufError, decode_request_body, message_for
from sampan.api.protobuf.meta import DURATION, MICRO_TIME, RAW_EXTENSION, go_duration
from sampan.api.protobuf.schema import STR, Message, decode_message
from sampan.api.protobuf.wire import iter_fields, read_varint

# --- a tiny encoder, enough to build test messages -------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vf(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def lf(number: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return lf(number, lf(1, key) + lf(2, value))


def body(api_version: str, kind: str, raw: bytes, content_type: str = "", encoding: str = "") -> bytes:
    type_meta = lf(1, api_version) + lf(2, kind)
    return MAGIC + lf(1, type_meta) + lf(2, raw) + lf(3, encoding) + lf(4, content_type)


def time_msg(seconds: int, nanos: int = 0) -> bytes:
    return vf(1, seconds) + (vf(2, nanos) if nanos else b"")


# --- wire ------------------------------------------------------------------------------


def test_varint_roundtrip_and_negative() -> None:
    assert read_varint(varint(300), 0) == (300, 2)
    fields = list(iter_fields(vf(1, -5)))
    assert fields[0][2] == (1 << 64) - 5


# --- semantics -------------------------------------------------------------------------


def test_explicit_zero_pointer_kept_and_omitempty_zero_dropped() -> None:
    spec = vf(1, 0) + vf(5, 0) + vf(7, 0) + vf(6, 0)  # replicas, minReadySeconds, paused, revisionHistoryLimit
    obj = decode_request_body(body("apps/v1", "Deployment", lf(2, spec)))
    assert obj["spec"] == {"replicas": 0, "revisionHistoryLimit": 0}


def test_absent_fields_are_omitted() -> None:
    obj = decode_request_body(body("apps/v1", "Deployment", lf(1, lf(1, "d"))))
    assert obj == {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d"}}


def test_required_field_absent_gets_go_zero_value() -> None:
    # PolicyRule.verbs has no omitempty: Go prints null for an empty list.
    obj = decode_request_body(body("rbac.authorization.k8s.io/v1", "Role", lf(2, lf(3, "pods"))))
    assert obj["rules"] == [{"verbs": None, "resources": ["pods"]}]


def test_negative_int_and_packed_repeated() -> None:
    packed = lf(4, varint(1000) + varint(2000))  # supplementalGroups, packed encoding
    unpacked = vf(4, 3000)
    security = packed + unpacked + vf(2, 0) + vf(5, 2000)
    pod_spec = lf(14, security) + vf(25, -10)  # priority = -10
    obj = decode_request_body(body("v1", "Pod", lf(2, pod_spec)))
    assert obj["spec"]["priority"] == -10
    assert obj["spec"]["securityContext"] == {"runAsUser": 0, "supplementalGroups": [1000, 2000, 3000], "fsGroup": 2000}
    assert obj["spec"]["containers"] is None


def test_object_meta_in_full() -> None:
    owner = lf(1, "ReplicaSet") + lf(3, "rs") + lf(4, "u-1") + lf(5, "apps/v1") + vf(6, 1) + vf(7, 0)
    managed = (
        lf(1, "kubectl") + lf(2, "Update") + lf(3, "v1") + lf(4, time_msg(1704164645))
        + lf(6, "FieldsV1") + lf(7, lf(1, b'{"f:data":{}}')) + lf(8, "status")
    )
    meta = (
        lf(1, "n") + lf(2, "") + lf(3, "ns") + lf(5, "uid") + vf(7, 2) + lf(8, time_msg(1704164645, 500))
        + lf(9, time_msg(0)) + vf(10, 30) + entry(11, "app", "x") + entry(12, "note", "")
        + lf(13, owner) + lf(14, "f1") + lf(14, "f2") + lf(17, managed)
    )
    obj = decode_request_body(body("v1", "ConfigMap", lf(1, meta)))
    assert obj["metadata"] == {
        "name": "n",
        "namespace": "ns",
        "uid": "uid",
        "generation": 2,
        "creationTimestamp": "2024-01-02T03:04:05Z",
        "deletionTimestamp": "1970-01-01T00:00:00Z",
        "deletionGracePeriodSeconds": 30,
        "labels": {"app": "x"},
        "annotations": {"note": ""},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-1",
             "controller": True, "blockOwnerDeletion": False},
        ],
        "finalizers": ["f1", "f2"],
        "managedFields": [
            {"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T03:04:05Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}, "subresource": "status"},
        ],
    }


def test_unknown_fields_are_skipped() -> None:
    raw = lf(1, lf(1, "n") + lf(99, "future") + vf(98, 7)) + lf(50, b"\x01\x02") + vf(51, 1)
    raw += varint(52 << 3 | 1) + b"\0" * 8 + varint(53 << 3 | 5) + b"\0" * 4
    assert decode_request_body(body("v1", "Namespace", raw)) == {
        "kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "n"},
    }


def test_delete_options_in_full() -> None:
    raw = vf(1, 0) + lf(2, lf(1, "u1") + lf(2, "")) + vf(3, 0) + lf(4, "Foreground") + lf(5, "All")
    obj = decode_request_body(body("meta.k8s.io/v1", "DeleteOptions", raw))
    assert obj == {
        "kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u1", "resourceVersion": ""}, "orphanDependents": False,
        "propagationPolicy": "Foreground", "dryRun": ["All"],
    }


def test_container_parts() -> None:
    probe = lf(1, lf(2, lf(1, "/healthz") + lf(2, vf(1, 1) + lf(3, "http")) + lf(5, lf(1, "X") + lf(2, "")))) + vf(2, 5)
    env = lf(1, "A") + lf(3, lf(4, lf(1, lf(1, "sec")) + lf(2, "key")))
    resources = entry(1, "cpu", lf(1, "500m")) + entry(2, "memory", lf(1, "64Mi"))
    mount = lf(1, "data") + vf(2, 0) + lf(3, "/data")
    container = lf(1, "c") + lf(2, "img") + lf(7, env) + lf(8, resources) + lf(9, mount) + lf(10, probe) + vf(16, 0)
    volume = lf(1, "data") + lf(2, lf(2, lf(1, "") + lf(2, lf(1, "1Gi"))))
    tolerate = lf(1, "k") + lf(2, "Exists") + vf(5, 60)
    spec = lf(1, volume) + lf(2, container) + lf(22, tolerate)
    template = lf(1, lf(1, "")) + lf(2, spec)
    obj = decode_request_body(body("batch/v1", "Job", lf(2, lf(6, template))))
    pod = obj["spec"]["template"]
    assert pod["spec"] == {
        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
        "containers": [{
            "name": "c",
            "image": "img",
            "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "key"}}}],
            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [{"name": "X", "value": ""}]},
                "initialDelaySeconds": 5,
            },
        }],
        "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 60}],
    }
    assert pod["metadata"] == {}


def test_micro_time_duration_and_raw_extension() -> None:
    probe = Message("Probe", {1: ("t", MICRO_TIME), 2: ("d", DURATION), 3: ("raw", RAW_EXTENSION), 4: ("s", STR)})
    data = lf(1, time_msg(1704164645, 123456789)) + lf(2, vf(1, 90 * 10**9)) + lf(3, lf(1, b'{"a":[1,2]}'))
    assert decode_message(probe, data) == {"t": "2024-01-02T03:04:05.123456Z", "d": "1m30s", "raw": {"a": [1, 2]}}
    assert decode_message(probe, lf(1, b"") + lf(3, b"")) == {"t": None, "raw": None}
    nested = body("v1", "Namespace", lf(1, lf(1, "inner")))
    assert decode_message(probe, lf(3, lf(1, nested)))["raw"]["metadata"] == {"name": "inner"}


@pytest.mark.parametrize(("nanos", "text"), [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (300_000_000, "300ms"), (1_500_000_000, "1.5s"),
    (3_600_000_000_000, "1h0m0s"), (-90 * 10**9, "-1m30s"), (3_723_000_000_000, "1h2m3s"),
])
def test_go_duration(nanos: int, text: str) -> None:
    assert go_duration(nanos) == text


def test_json_embedded_in_envelope() -> None:
    raw = json.dumps({"metadata": {"name": "j"}}).encode()
    obj = decode_request_body(body("v1", "ConfigMap", raw, content_type="application/json"))
    assert obj == {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "j"}}


# --- errors ----------------------------------------------------------------------------


def test_bad_magic() -> None:
    with pytest.raises(ProtobufError, match="k8s"):
        decode_request_body(b'{"kind":"Namespace"}')


def test_unknown_kind() -> None:
    with pytest.raises(ProtobufError, match='no kind "Widget" is registered for version "v1"'):
        decode_request_body(body("v1", "Widget", b""))
    with pytest.raises(ProtobufError, match='no kind "Namespace" is registered for version "apps/v1"'):
        message_for("apps/v1", "Namespace")


def test_envelope_without_type() -> None:
    with pytest.raises(ProtobufError, match="apiVersion/kind"):
        decode_request_body(MAGIC + lf(2, b""))


def test_unsupported_encoding() -> None:
    with pytest.raises(ProtobufError, match="gzip"):
        decode_request_body(body("v1", "Namespace", b"", encoding="gzip"))


@pytest.mark.parametrize("raw", [
    b"\x0a\x05ab",                 # length runs past the end
    b"\x08",                       # truncated varint
    b"\x08" + b"\xff" * 11,        # varint too long
    b"\x0b",                       # group wire type
    vf(1, 5),                      # metadata sent as a varint
    lf(1, lf(1, b"\xff\xfe")),     # name is not UTF-8
    b"\x00\x01",                   # field number 0
])
def test_malformed_message(raw: bytes) -> None:
    with pytest.raises(ProtobufError, match="malformed"):
        decode_request_body(body("v1", "Namespace", raw))


def test_protobuf_error_is_value_error() -> None:
    assert issubclass(ProtobufError, ValueError)

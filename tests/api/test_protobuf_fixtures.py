"""Bodies recorded from kubectl 1.32 decode to exactly the JSON the same object has."""

import json
from pathlib import Path

import pytest

from sampan.api.protobuf import PROTOBUF_CONTENT_TYPE, decode_request_body

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.pb"))


def test_fixtures_present() -> None:
    assert len(NAMES) >= 30
    assert PROTOBUF_CONTENT_TYPE == "application/vnd.kubernetes.protobuf"


@pytest.mark.parametrize("name", NAMES)
def test_recorded_body_decodes_to_expected_json(name: str) -> None:
    body = (FIXTURES / f"{name}.pb").read_bytes()
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert decode_request_body(body) == expected


def test_deployment_details() -> None:
    obj = decode_request_body((FIXTURES / "deployment.pb").read_bytes())
    assert obj["kind"] == "Deployment" and obj["apiVersion"] == "apps/v1"
    spec = obj["spec"]
    assert spec["replicas"] == 3
    container = spec["template"]["spec"]["containers"][0]
    assert container == {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}
    # gogo writes explicit zeros (generateName "", generation 0, stdin false...): all dropped.
    assert obj["metadata"] == {"name": "web", "creationTimestamp": None, "labels": {"app": "web"}}


def test_pointer_zero_is_kept() -> None:
    obj = decode_request_body((FIXTURES / "deployment_zero.pb").read_bytes())
    assert obj["spec"]["replicas"] == 0
    assert decode_request_body((FIXTURES / "priorityclass_zero.pb").read_bytes())["value"] == 0


def test_binary_values_are_base64() -> None:
    cm = decode_request_body((FIXTURES / "configmap.pb").read_bytes())
    assert cm["data"] == {"a": "b", "empty": ""}
    assert cm["binaryData"] == {"bin": "YmluAP/+"}
    secret = decode_request_body((FIXTURES / "secret_generic.pb").read_bytes())
    assert secret["data"] == {"a": "Yg==", "empty": ""}
    assert secret["type"] == "Opaque"


def test_int_or_string() -> None:
    assert decode_request_body((FIXTURES / "pdb_min.pb").read_bytes())["spec"]["minAvailable"] == "50%"
    assert decode_request_body((FIXTURES / "pdb_max.pb").read_bytes())["spec"]["maxUnavailable"] == 1
    ports = decode_request_body((FIXTURES / "service_nodeport.pb").read_bytes())["spec"]["ports"]
    assert ports[0]["targetPort"] == "http" and ports[0]["nodePort"] == 30080


def test_delete_options_from_drain() -> None:
    assert decode_request_body((FIXTURES / "drain_delete.pb").read_bytes()) == {
        "kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 7,
    }
    assert decode_request_body((FIXTURES / "drain_delete_dryrun.pb").read_bytes())["dryRun"] == ["All"]


def test_access_reviews() -> None:
    review = decode_request_body((FIXTURES / "cani_sub.pb").read_bytes())
    assert review["spec"]["resourceAttributes"] == {
        "namespace": "ns", "verb": "create", "group": "apps", "resource": "deployments", "subresource": "scale",
    }
    token = decode_request_body((FIXTURES / "token.pb").read_bytes())
    assert token["spec"] == {"audiences": ["aud"], "expirationSeconds": 3600}
    whoami = decode_request_body((FIXTURES / "whoami.pb").read_bytes())
    assert whoami["kind"] == "SelfSubjectReview"

"""Kinds served at several versions over one storage, the root CA publisher, CRD names
and access reviews, driven by the real kubectl against a real ``sampan server``."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import yaml

from tests.e2e.cluster import Cluster, cluster, get_json, needs_kubectl  # noqa: F401
from tests.e2e.cluster import wait_for as poll

pytestmark = needs_kubectl


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_events_posted_via_events_api_show_in_describe_and_events(cluster: Cluster) -> None:  # noqa: F811
    cluster.kubectl("create", "configmap", "settings", "--from-literal=a=1")
    cm = get_json(cluster, "configmap", "settings")
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "settings.reconciled", "namespace": "default"},
        "eventTime": _now(),
        "reportingController": "example.com/operator",
        "reportingInstance": "operator-0",
        "action": "Reconcile",
        "reason": "Reconciled",
        "regarding": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": "default",
            "name": "settings",
            "uid": cm["metadata"]["uid"],
        },
        "note": "settings were reconciled by the operator",
        "type": "Normal",
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(event))

    core = get_json(cluster, "events.v1.", "settings.reconciled")
    assert core["apiVersion"] == "v1"
    assert core["involvedObject"]["name"] == "settings"
    assert core["message"] == "settings were reconciled by the operator"
    assert core["reportingComponent"] == "example.com/operator"

    described = cluster.kubectl("describe", "configmap", "settings").stdout
    line = next(ln for ln in described.splitlines() if "Reconciled" in ln)
    assert line.split()[0] == "Normal"
    assert "example.com/operator" in line and "settings were reconciled by the operator" in line

    listed = cluster.kubectl("events", "--for", "configmap/settings").stdout
    assert "Reconciled" in listed and "settings were reconciled by the operator" in listed

    # Field selectors on both APIs find it, under each API's own field names.
    by_core = cluster.kubectl(
        "get", "events.v1.", "--field-selector", "involvedObject.name=settings", "-o", "name"
    ).stdout.split()
    assert by_core == ["event/settings.reconciled"]
    by_new = cluster.kubectl(
        "get", "events.v1.events.k8s.io", "--field-selector", "regarding.name=settings", "-o", "name"
    ).stdout.split()
    assert by_new == ["event.events.k8s.io/settings.reconciled"]

    # An event written the old way reads back through events.k8s.io/v1, converted.
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "settings.old", "namespace": "default"},
        "involvedObject": {"kind": "ConfigMap", "namespace": "default", "name": "settings"},
        "reason": "Touched",
        "message": "touched the old way",
        "source": {"component": "old-tool"},
        "count": 1,
        "type": "Warning",
    }))
    new = get_json(cluster, "events.v1.events.k8s.io", "settings.old")
    assert new["note"] == "touched the old way"
    assert new["deprecatedSource"] == {"component": "old-tool"}
    assert new["regarding"]["name"] == "settings"


def test_kubectl_autoscale_and_both_hpa_versions(cluster: Cluster) -> None:  # noqa: F811
    cluster.kubectl("create", "deployment", "x", "--image=nginx")
    cluster.kubectl("autoscale", "deployment", "x", "--max", "5", "--cpu-percent", "60")
    table = cluster.kubectl("get", "hpa").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "REFERENCE"]
    assert table[1].split()[:2] == ["x", "Deployment/x"]
    assert "cpu: <unknown>/60%" in table[1]

    v2 = yaml.safe_load(cluster.kubectl("get", "hpa", "x", "-o", "yaml").stdout)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["maxReplicas"] == 5
    assert v2["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
    ]
    v1 = yaml.safe_load(cluster.kubectl("get", "horizontalpodautoscalers.v1.autoscaling", "x", "-o", "yaml").stdout)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 60
    assert v1["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}

    # A v2-only metric added through v2 survives an edit through v1.
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
    }
    patch = {"spec": {"metrics": v2["spec"]["metrics"] + [memory]}}
    cluster.kubectl("patch", "horizontalpodautoscalers.v2.autoscaling", "x", "--type=merge", "-p", json.dumps(patch))
    v1_patch = '{"spec":{"maxReplicas":7}}'
    cluster.kubectl("patch", "horizontalpodautoscalers.v1.autoscaling", "x", "--type=merge", "-p", v1_patch)
    after = get_json(cluster, "hpa", "x")
    assert after["spec"]["maxReplicas"] == 7
    assert memory in after["spec"]["metrics"]
    assert "x" in cluster.kubectl("get", "all").stdout


def test_root_ca_published_in_new_namespace(cluster: Cluster) -> None:  # noqa: F811
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    cluster.kubectl("create", "namespace", "team-ca")

    def published() -> Any:
        got = cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", "team-ca", "-o", "json", check=False)
        return json.loads(got.stdout) if got.returncode == 0 else None

    cm = poll(published)
    assert cm["data"] == {"ca.crt": ca}
    assert "kube-apiserver" in cm["metadata"]["annotations"]["kubernetes.io/description"]
    cluster.kubectl("delete", "configmap", "kube-root-ca.crt", "-n", "team-ca")
    again = poll(published)
    assert again["metadata"]["uid"] != cm["metadata"]["uid"] and again["data"] == {"ca.crt": ca}


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: toys.example.org}
spec:
  group: example.org
  scope: Namespaced
  names:
    {plural: toys, singular: toy, kind: Toy, listKind: ToyCollection, shortNames: [ty], categories: [all, playthings]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_crd_short_name_category_and_list_kind(cluster: Cluster) -> None:  # noqa: F811
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.kubectl("wait", "--for", "condition=established", "crd/toys.example.org", "--timeout=30s")
    toy = {"apiVersion": "example.org/v1", "kind": "Toy", "metadata": {"name": "ball"}, "spec": {"color": "red"}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(toy))
    assert cluster.kubectl("get", "ty", "-o", "name").stdout.split() == ["toy.example.org/ball"]
    assert cluster.kubectl("get", "playthings", "-o", "name").stdout.split() == ["toy.example.org/ball"]
    assert "toy.example.org/ball" in cluster.kubectl("get", "all").stdout
    raw = json.loads(cluster.kubectl("get", "--raw", "/apis/example.org/v1/namespaces/default/toys").stdout)
    assert raw["kind"] == "ToyCollection"


def test_auth_can_i_for_the_admin(cluster: Cluster) -> None:  # noqa: F811
    assert cluster.kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "delete", "nodes", "--all-namespaces").stdout.strip() == "yes"
    listed = cluster.kubectl("auth", "can-i", "--list").stdout.splitlines()
    assert listed[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    rows = [line.split() for line in listed[1:]]
    assert ["*.*", "[]", "[]", "[*]"] in rows
    assert ["[*]", "[]", "[*]"] in rows

"""CustomResourceDefinitions end to end: a real ``sampan server`` process, the real kubectl
and the official ``kubernetes`` client's CustomObjectsApi."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.cluster import Cluster, cluster, needs_kubectl, start_cluster  # noqa: F401

pytestmark = needs_kubectl


def crd_manifest(plural: str, kind: str, short: str) -> str:
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {kind.lower()}, kind: {kind}, shortNames: [{short}], categories: [all]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - {{name: Size, type: string, jsonPath: .spec.size}}
    - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
    selectableFields:
    - {{jsonPath: .spec.size}}
    schema:
      openAPIV3Schema:
        type: object
        description: A {kind} makes things.
        properties:
          spec:
            type: object
            description: The wanted {kind}.
            required: [size]
            properties:
              size: {{type: string, enum: [small, large], description: How big it is.}}
              replicas: {{type: integer, minimum: 0, default: 1}}
              tags:
                type: array
                x-kubernetes-list-type: set
                items: {{type: string}}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {{type: string}}
                    port: {{type: integer}}
          status:
            type: object
            properties:
              replicas: {{type: integer}}
              selector: {{type: string}}
              phase: {{type: string}}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def cr(kind: str, name: str, size: str = "small", **spec: Any) -> str:
    return json.dumps(
        {"apiVersion": "example.com/v1", "kind": kind, "metadata": {"name": name}, "spec": {"size": size, **spec}}
    )


def install(cluster: Cluster, plural: str, kind: str, short: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=crd_manifest(plural, kind, short))
    cluster.kubectl("wait", "--for", "condition=established", f"crd/{plural}.example.com", "--timeout=30s")


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_kubectl_drives_custom_resources(cluster: Cluster) -> None:  # noqa: F811
    install(cluster, "widgets", "Widget", "wd")
    crd = get_json(cluster, "crd", "widgets.example.com")
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["NamesAccepted"]["reason"] == "NoConflicts"
    assert conditions["Established"]["status"] == "True"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert "widgets" in cluster.kubectl("api-resources", "--api-group=example.com").stdout

    cluster.kubectl("apply", "-f", "-", input=cr("Widget", "w1"))
    cluster.kubectl("apply", "-f", "-", input=cr("Widget", "w2", "large", replicas=4))
    table = cluster.kubectl("get", "wd").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "REPLICAS"]
    assert table[1].split() == ["w1", "small", "1"]  # replicas defaulted by the schema
    assert "widget.example.com/w1" in cluster.kubectl("get", "all").stdout
    assert cluster.kubectl("get", "widgets", "--field-selector", "spec.size=large", "-o", "name").stdout.split() == [
        "widget.example.com/w2"
    ]
    assert cluster.kubectl("get", "widgets", "--field-selector", "metadata.name=w1", "-o", "name").stdout.split() == [
        "widget.example.com/w1"
    ]
    bad_selector = cluster.kubectl("get", "widgets", "--field-selector", "spec.replicas=1", check=False)
    assert bad_selector.returncode != 0 and "field label not supported" in bad_selector.stderr

    described = cluster.kubectl("describe", "widget", "w1").stdout
    assert "Kind:         Widget" in described and "Size:      small" in described
    explained = cluster.kubectl("explain", "widgets.spec.size").stdout
    assert "How big it is." in explained
    assert "A Widget makes things." in cluster.kubectl("explain", "widget").stdout

    cluster.kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":"large"}}')
    cluster.kubectl("patch", "widget", "w1", "--type=json", "-p", '[{"op":"add","path":"/spec/tags","value":["a"]}]')
    cluster.kubectl("scale", "widget", "w1", "--replicas=3")
    obj = get_json(cluster, "widget", "w1")
    assert obj["spec"] == {"size": "large", "replicas": 3, "tags": ["a"]}
    assert obj["metadata"]["generation"] == 4
    # Status only changes through the status subresource.
    cluster.kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge",
                    "-p", '{"status":{"replicas":3,"selector":"app=w1","phase":"Ready"}}')
    cluster.kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"status":{"phase":"Lost"}}')
    obj = get_json(cluster, "widget", "w1")
    assert obj["status"] == {"replicas": 3, "selector": "app=w1", "phase": "Ready"}
    assert obj["metadata"]["generation"] == 4
    scale_path = "/apis/example.com/v1/namespaces/default/widgets/w1/scale"
    scale = json.loads(cluster.kubectl("get", "--raw", scale_path).stdout)
    assert scale["spec"]["replicas"] == 3 and scale["status"] == {"replicas": 3, "selector": "app=w1"}

    # Every served version reads the same stored object.
    beta = get_json(cluster, "widgets.v1beta1.example.com", "w1")
    assert beta["apiVersion"] == "example.com/v1beta1" and beta["spec"]["size"] == "large"


def test_schema_violations_are_422(cluster: Cluster) -> None:  # noqa: F811
    install(cluster, "gizmos", "Gizmo", "gz")
    bad = cluster.kubectl("create", "-f", "-", input=cr("Gizmo", "g1", "huge", replicas=-1), check=False)
    assert bad.returncode != 0
    assert 'The Gizmo "g1" is invalid' in bad.stderr
    assert 'spec.size: Unsupported value: "huge": supported values: "small", "large"' in bad.stderr
    assert "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0" in bad.stderr
    dup = cluster.kubectl("create", "-f", "-", input=cr("Gizmo", "g2", tags=["a", "a"]), check=False)
    assert 'spec.tags[1]: Duplicate value: "a"' in dup.stderr
    missing = cluster.kubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g3"}, "spec": {}}), check=False)
    assert "spec.size: Required value" in missing.stderr
    # Unknown fields are pruned (kubectl's default Strict validation refuses them instead).
    cluster.kubectl("create", "--validate=false", "-f", "-", input=cr("Gizmo", "g4", extra="x"))
    assert "extra" not in get_json(cluster, "gizmo", "g4")["spec"]
    refused = cluster.kubectl("create", "-f", "-", input=cr("Gizmo", "g5", extra="x"), check=False)
    assert 'unknown field "spec.extra"' in refused.stderr


def test_invalid_crds_are_rejected(cluster: Cluster) -> None:  # noqa: F811
    wrong_name = crd_manifest("things", "Thing", "th").replace("name: things.example.com", "name: stuff.example.com")
    result = cluster.kubectl("apply", "-f", "-", input=wrong_name, check=False)
    expected = 'metadata.name: Invalid value: "stuff.example.com": must be spec.names.plural+"."+spec.group'
    assert expected in result.stderr
    two_storage = crd_manifest("things", "Thing", "th").replace("storage: false", "storage: true")
    result = cluster.kubectl("apply", "-f", "-", input=two_storage, check=False)
    assert "must have exactly one version marked as storage version" in result.stderr
    not_structural = crd_manifest("things", "Thing", "th").replace(
        "type: object\n            description: The wanted", "description: The wanted")
    result = cluster.kubectl("apply", "-f", "-", input=not_structural, check=False)
    assert "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value" in result.stderr
    assert cluster.kubectl("get", "crd", "things.example.com", check=False).returncode != 0


def test_server_side_apply_merges_by_schema(cluster: Cluster) -> None:  # noqa: F811
    install(cluster, "sprockets", "Sprocket", "sp")
    first = cr("Sprocket", "s1", tags=["a"], ports=[{"name": "http", "port": 80}])
    cluster.kubectl("apply", "--server-side", "--field-manager=alice", "-f", "-", input=first)
    second = cr("Sprocket", "s1", tags=["b"], ports=[{"name": "grpc", "port": 90}])
    cluster.kubectl("apply", "--server-side", "--field-manager=bob", "-f", "-", input=second)
    obj = get_json(cluster, "sprocket", "s1", "--show-managed-fields")
    # Sets and maps keyed by name are merged between managers, not replaced.
    assert sorted(obj["spec"]["tags"]) == ["a", "b"]
    assert sorted(p["name"] for p in obj["spec"]["ports"]) == ["grpc", "http"]
    managers = {m["manager"] for m in obj["metadata"]["managedFields"]}
    assert {"alice", "bob"} <= managers
    conflict = cluster.kubectl("apply", "--server-side", "--field-manager=bob", "-f", "-",
                               input=cr("Sprocket", "s1", "large"), check=False)
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower()


@pytest.fixture
def api(cluster: Cluster) -> Iterator[Any]:  # noqa: F811
    kubernetes = pytest.importorskip("kubernetes")
    client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    try:
        yield kubernetes.client.CustomObjectsApi(client)
    finally:
        client.close()


def test_custom_objects_api(cluster: Cluster, api: Any) -> None:  # noqa: F811
    import kubernetes

    install(cluster, "doodads", "Doodad", "dd")
    args = ("example.com", "v1", "default", "doodads")
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def watch() -> None:
        w = kubernetes.watch.Watch()
        started.set()
        for event in w.stream(api.list_namespaced_custom_object, *args, timeout_seconds=10):
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                w.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started.wait(5)
    body = {"apiVersion": "example.com/v1", "kind": "Doodad", "metadata": {"name": "d1"}, "spec": {"size": "small"}}
    created = api.create_namespaced_custom_object(*args, body)
    assert created["spec"] == {"size": "small", "replicas": 1}
    listed = api.list_namespaced_custom_object(*args)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["d1"] and listed["kind"] == "DoodadList"
    patched = api.patch_namespaced_custom_object(*args, "d1", {"spec": {"replicas": 2}})
    assert patched["spec"]["replicas"] == 2
    status = api.patch_namespaced_custom_object_status(*args, "d1", {"status": {"phase": "Ready"}})
    assert status["status"] == {"phase": "Ready"}
    scale = api.patch_namespaced_custom_object_scale(*args, "d1", {"spec": {"replicas": 5}})
    assert scale["spec"]["replicas"] == 5
    with pytest.raises(kubernetes.client.ApiException) as err:
        api.create_namespaced_custom_object(*args, {**body, "metadata": {"name": "d2"}, "spec": {"size": 3}})
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "spec.size"
    api.delete_namespaced_custom_object(*args, "d1")
    watcher.join(15)
    assert ("ADDED", "d1") in seen and ("DELETED", "d1") in seen
    assert any(t == "MODIFIED" for t, _ in seen)


def test_crd_delete_removes_custom_resources(cluster: Cluster) -> None:  # noqa: F811
    install(cluster, "trinkets", "Trinket", "tk")
    cluster.kubectl("apply", "-f", "-", input=cr("Trinket", "t1"))
    cluster.kubectl("create", "namespace", "other")
    cluster.kubectl("apply", "-n", "other", "-f", "-", input=cr("Trinket", "t2"))
    assert len(get_json(cluster, "trinkets", "-A")["items"]) == 2
    cluster.kubectl("delete", "crd", "trinkets.example.com", "--timeout=30s")
    assert cluster.kubectl("get", "crd", "trinkets.example.com", check=False).returncode != 0
    assert "trinkets" not in cluster.kubectl("api-resources").stdout
    assert cluster.kubectl("get", "trinkets", "-A", check=False).returncode != 0
    # Created again, it starts empty: the old custom resources were deleted, not hidden.
    install(cluster, "trinkets", "Trinket", "tk")
    assert get_json(cluster, "trinkets", "-A")["items"] == []


def test_sqlite_restart_serves_crds_again(tmp_path: Path) -> None:
    first = start_cluster(tmp_path, "sqlite")
    try:
        install(first, "widgets", "Widget", "wd")
        first.kubectl("apply", "-f", "-", input=cr("Widget", "kept", "large"))
    finally:
        first.stop()
    second = start_cluster(tmp_path, "sqlite")
    try:
        # Served as soon as the server says ready: no wait for the CRD loop.
        assert second.kubectl("get", "widget", "kept", "-o", "jsonpath={.spec.size}").stdout == "large"
        assert "kept" in second.kubectl("get", "wd").stdout
        assert "How big it is." in second.kubectl("explain", "widget.spec.size").stdout
    finally:
        second.stop()


def test_cluster_scoped_crd_and_updates(cluster: Cluster) -> None:  # noqa: F811
    manifest = crd_manifest("regions", "Region", "rg").replace("scope: Namespaced", "scope: Cluster")
    cluster.kubectl("apply", "-f", "-", input=manifest)
    cluster.kubectl("wait", "--for", "condition=established", "crd/regions.example.com", "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=cr("Region", "north"))
    obj = get_json(cluster, "region", "north")
    assert "namespace" not in obj["metadata"]
    assert cluster.kubectl("get", "--raw", "/apis/example.com/v1/regions/north", check=False).returncode == 0
    # A new printer column shows up at once; the CRD's generation moves, the CRs are untouched.
    patch = [{"op": "add", "path": "/spec/versions/0/additionalPrinterColumns/-",
              "value": {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}}]
    cluster.kubectl("patch", "crd", "regions.example.com", "--type=json", "-p", json.dumps(patch))

    def header() -> list[str]:
        return cluster.kubectl("get", "regions").stdout.splitlines()[0].split()

    deadline = time.monotonic() + 10
    while header() != ["NAME", "SIZE", "REPLICAS", "PHASE"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert header() == ["NAME", "SIZE", "REPLICAS", "PHASE"]
    assert get_json(cluster, "crd", "regions.example.com")["metadata"]["generation"] == 2

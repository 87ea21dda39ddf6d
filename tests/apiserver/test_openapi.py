from dataclasses import dataclass, field
from typing import Any

from sampan.api import schemas
from sampan.apiserver.openapi import build_openapi_v2, build_openapi_v3, content_hash, openapi_v3_root

VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


@dataclass
class Res:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    verbs: list[str] = field(default_factory=lambda: list(VERBS))
    subresources: dict[str, Any] = field(default_factory=dict)
    schema: dict | None = None


def builtin(group, version, plural, kind, **kw) -> Res:
    return Res(group, version, plural, kind, schema=schemas.schema_for(group, version, kind), **kw)


APPS = [builtin("apps", "v1", "deployments", "Deployment", subresources={"status": {}, "scale": {}}),
        builtin("apps", "v1", "replicasets", "ReplicaSet", subresources={"status": {}, "scale": {}}),
        builtin("apps", "v1", "statefulsets", "StatefulSet"), builtin("apps", "v1", "daemonsets", "DaemonSet")]


def refs(node, out):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            out.add(node["$ref"])
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)
    return out


def test_apps_v1_doc_is_self_contained():
    doc = build_openapi_v3("apps", "v1", APPS)
    assert doc["openapi"] == "3.0.0"
    names = set(doc["components"]["schemas"])
    for ref in refs(doc, set()):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in names, ref
    assert "io.k8s.api.core.v1.PodTemplateSpec" in names
    assert "io.k8s.api.autoscaling.v1.Scale" in names
    spec = doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["type"] == "object" and spec["properties"]["replicas"]["type"] == "integer"
    assert spec["properties"]["template"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"}]
    deploy = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deploy["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert "enum" not in deploy["properties"]["kind"]


def test_patch_operations_allow_server_side_validation():
    doc = build_openapi_v3("apps", "v1", APPS)
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-action"] == "patch"
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert sorted(patch["requestBody"]["content"]) == ["application/apply-patch+yaml", "application/json-patch+json",
                                                      "application/merge-patch+json",
                                                      "application/strategic-merge-patch+json"]
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    for path in doc["paths"].values():
        for method, op in path.items():
            if path is not doc["paths"]["/apis/apps/v1/"]:
                assert "x-kubernetes-action" in op and "x-kubernetes-group-version-kind" in op


def test_core_and_crd_docs():
    core = [builtin("", "v1", "namespaces", "Namespace", namespaced=False, subresources={"status": {}}),
            builtin("", "v1", "pods", "Pod", subresources={"log": {}, "exec": {}, "eviction": {}, "status": {}})]
    doc = build_openapi_v3("", "v1", core)
    assert "/api/v1/namespaces/{name}" in doc["paths"]
    assert "fieldValidation" in [p["name"] for p in doc["paths"]["/api/v1/namespaces/{name}"]["patch"]["parameters"]]
    assert "io.k8s.api.policy.v1.Eviction" in doc["components"]["schemas"]
    crd = Res("stable.example.com", "v1", "crontabs", "CronTab", schema={
        "type": "object", "properties": {"spec": {"type": "object", "properties": {"cron": {"type": "string"}}}}})
    cdoc = build_openapi_v3("stable.example.com", "v1", [crd])
    names = cdoc["components"]["schemas"]
    assert names["com.example.stable.v1.CronTab"]["properties"]["spec"]["properties"]["cron"] == {"type": "string"}
    assert names["com.example.stable.v1.CronTab"]["x-kubernetes-group-version-kind"][0]["kind"] == "CronTab"
    patch = cdoc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    for ref in refs(cdoc, set()):
        assert ref.rsplit("/", 1)[1] in names


def test_root_and_hash():
    doc = build_openapi_v3("apps", "v1", APPS)
    h = content_hash(doc)
    assert h == content_hash(build_openapi_v3("apps", "v1", APPS)) and len(h) == 128
    assert h != content_hash(build_openapi_v3("apps", "v1", APPS[:1]))
    root = openapi_v3_root({"apis/apps/v1": h, "api/v1": "X"})
    assert root["paths"]["apis/apps/v1"] == {"serverRelativeURL": f"/openapi/v3/apis/apps/v1?hash={h}"}


def test_v2_doc():
    doc = build_openapi_v2(APPS)
    assert doc["swagger"] == "2.0"
    for ref in refs(doc, set()):
        assert ref.startswith("#/definitions/") and ref.rsplit("/", 1)[1] in doc["definitions"]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]

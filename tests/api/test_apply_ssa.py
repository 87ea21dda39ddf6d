"""Server-side apply: merging, ownership, conflicts and pruning."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sampan.api import schemas
from sampan.api.apply import ApplyConflict, InvalidApply, server_side_apply, update_managed_fields

T0, T1, T2 = "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"
DEPLOY = schemas.schema_for("apps", "v1", "Deployment")
CONFIGMAP = schemas.schema_for("", "v1", "ConfigMap")


def deployment(replicas: int = 3, image: str = "nginx:1.14.2", **extra: Any) -> dict[str, Any]:
    container = {"name": "nginx", "image": image, "ports": [{"containerPort": 80}], **extra}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [container]}},
        },
    }


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str = "kubectl",
          force: bool = False, now: str = T0, schema: Any = DEPLOY, version: str = "apps/v1") -> dict[str, Any]:
    return server_side_apply(live, config, manager, force, schema, version, now)


def entry(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    found = [e for e in obj["metadata"].get("managedFields", []) if e["manager"] == manager]
    assert len(found) == 1, obj["metadata"].get("managedFields")
    return found[0]


def managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def scale(obj: dict[str, Any], replicas: int, manager: str = "kubectl-scale", now: str = T1) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["spec"]["replicas"] = replicas
    update_managed_fields(obj, new, manager, DEPLOY, "apps/v1", now)
    return new


# What kube-apiserver 1.32 records for `kubectl apply --server-side` of this Deployment.
KUBECTL_APPLY_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:selector": {},
        "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                ".": {},
                "f:image": {},
                "f:name": {},
                "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
            }}},
        },
    },
}


def test_create_records_apply_entry_like_apiserver() -> None:
    config = deployment()
    obj = apply(None, config)
    assert obj["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1", "fieldsV1": KUBECTL_APPLY_FIELDS,
    }]
    assert obj["spec"] == config["spec"]
    assert json.dumps(entry(obj, "kubectl")["fieldsV1"]) == json.dumps(KUBECTL_APPLY_FIELDS)  # key order too
    assert config == deployment()  # input untouched


def test_scaled_by_another_manager_conflicts_on_replicas() -> None:
    obj = scale(apply(None, deployment()), 5)
    assert managers(obj) == [("kubectl", "Apply"), ("kubectl-scale", "Update")]
    assert entry(obj, "kubectl-scale")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entry(obj, "kubectl")["fieldsV1"]["f:spec"]

    with pytest.raises(ApplyConflict) as err:
        apply(obj, deployment(replicas=3), now=T2)
    conflict = err.value
    assert conflict.conflicts == [("kubectl-scale", ".spec.replicas")]
    assert conflict.causes() == [{
        "reason": "FieldManagerConflict",
        "message": 'conflict with "kubectl-scale" using apps/v1',
        "field": ".spec.replicas",
    }]
    assert conflict.message() == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas')


def test_force_apply_takes_ownership() -> None:
    obj = scale(apply(None, deployment()), 5)
    forced = apply(obj, deployment(replicas=3), force=True, now=T2)
    assert forced["spec"]["replicas"] == 3
    assert managers(forced) == [("kubectl", "Apply")]  # kubectl-scale owned nothing else
    assert entry(forced, "kubectl")["time"] == T2
    assert "f:replicas" in entry(forced, "kubectl")["fieldsV1"]["f:spec"]


def test_same_value_is_shared_without_conflict() -> None:
    obj = apply(None, deployment())
    ci_config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
                 "spec": {"replicas": 3}}
    shared = apply(obj, ci_config, manager="ci", now=T1)
    assert entry(shared, "ci")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" in entry(shared, "kubectl")["fieldsV1"]["f:spec"]
    assert "time" not in entry(shared, "ci")  # a no-op apply sets no time, as upstream
    # kubectl stops applying replicas: ci still owns it, so the value stays.
    config = deployment()
    del config["spec"]["replicas"]
    after = apply(shared, config, now=T2)
    assert after["spec"]["replicas"] == 3
    # ci changing it now is fine only with force: kubectl no longer owns it.
    assert apply(after, {**ci_config, "spec": {"replicas": 7}}, manager="ci")["spec"]["replicas"] == 7


def test_two_appliers_conflict_lists_every_field() -> None:
    obj = apply(None, deployment())
    other = deployment(replicas=4, image="nginx:1.25")
    with pytest.raises(ApplyConflict) as err:
        apply(obj, other, manager="helm")
    assert err.value.conflicts == [
        ("kubectl", ".spec.replicas"),
        ("kubectl", '.spec.template.spec.containers[name="nginx"].image'),
    ]
    assert err.value.message() == (
        'Apply failed with 2 conflicts: conflicts with "kubectl":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image')


def test_fields_dropped_from_config_are_removed() -> None:
    config = deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    config["metadata"]["annotations"] = {"team": "web"}
    obj = apply(None, config)
    obj["spec"]["strategy"] = {"type": "RollingUpdate"}  # defaulted, owned by nobody

    config2 = deployment(env=[{"name": "A", "value": "1"}])
    after = apply(obj, config2, now=T1)
    container = after["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert "annotations" not in after["metadata"]
    assert after["spec"]["strategy"] == {"type": "RollingUpdate"}  # unowned fields stay
    assert "f:annotations" not in entry(after, "kubectl")["fieldsV1"]["f:metadata"]


def test_dropped_field_owned_by_an_updater_stays() -> None:
    obj = apply(None, deployment())
    labelled = copy.deepcopy(obj)
    labelled["metadata"]["labels"]["tier"] = "web"
    update_managed_fields(obj, labelled, "kubectl-label", DEPLOY, "apps/v1", T1)
    config = deployment()
    config["metadata"]["labels"]["tier"] = "web"
    both = apply(labelled, config, now=T1)
    config = deployment()
    after = apply(both, config, now=T2)
    assert after["metadata"]["labels"] == {"app": "nginx", "tier": "web"}


def test_containers_merge_by_name() -> None:
    obj = apply(None, deployment())
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
               "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}}}}
    merged = apply(obj, sidecar, manager="mesh", now=T1)
    names = [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]]
    assert names == ["nginx", "proxy"]
    assert merged["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.14.2"
    mesh = entry(merged, "mesh")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert list(mesh) == ['k:{"name":"proxy"}']
    # The mesh stops applying its container: only that one goes.
    sidecar["spec"]["template"]["spec"]["containers"] = []
    after = apply(merged, sidecar, manager="mesh", now=T2)
    assert [c["name"] for c in after["spec"]["template"]["spec"]["containers"]] == ["nginx"]


def test_list_order_follows_the_config_for_shared_items() -> None:
    obj = apply(None, deployment(env=[{"name": n, "value": "x"} for n in "ABC"]))
    config = deployment(env=[{"name": n, "value": "x"} for n in "CDA"])
    after = apply(obj, config, now=T1)
    env = after["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["C", "D", "A"]  # B pruned; config order kept


def test_configmap_created_by_apply() -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
              "data": {"key": "some value"}}
    obj = apply(None, config, schema=CONFIGMAP, version="v1")
    assert obj["data"] == {"key": "some value"}
    assert obj["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}},
    }]
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test-cm"}, "data": {"key": "new"}}
    with pytest.raises(ApplyConflict) as err:
        apply(obj, other, manager="m2", schema=CONFIGMAP, version="v1")
    assert err.value.causes()[0] == {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl"',
                                     "field": ".data.key"}


def test_custom_resource_without_schema() -> None:
    config = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 1, "tags": ["a", "b"], "nested": {"x": 1, "y": 2}}}
    obj = apply(None, config, schema=None, version="example.com/v1")
    fields = entry(obj, "kubectl")["fieldsV1"]
    # Unknown structure: every map entry is owned, lists are atomic.
    assert fields == {"f:spec": {".": {}, "f:nested": {".": {}, "f:x": {}, "f:y": {}},
                                 "f:size": {}, "f:tags": {}}}
    config["spec"] = {"size": 2, "tags": ["c"], "nested": {"x": 1}}
    after = apply(obj, config, schema=None, version="example.com/v1", now=T1)
    assert after["spec"] == {"size": 2, "tags": ["c"], "nested": {"x": 1}}


def test_custom_resource_with_schema_uses_list_types() -> None:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "properties": {"name": {"type": "string"},
                                                                 "port": {"type": "integer"}}}},
            "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        }}}}
    config = {"apiVersion": "example.com/v1", "kind": "Gateway",
              "metadata": {"name": "g", "finalizers": ["example.com/x"]},
              "spec": {"ports": [{"name": "http", "port": 80}], "hosts": ["a.example"]}}
    obj = apply(None, config, schema=schema, version="example.com/v1")
    assert obj["metadata"]["finalizers"] == ["example.com/x"]
    assert entry(obj, "kubectl")["fieldsV1"] == {
        "f:metadata": {"f:finalizers": {'v:"example.com/x"': {}}},
        "f:spec": {"f:hosts": {'v:"a.example"': {}},
                   "f:ports": {'k:{"name":"http"}': {".": {}, "f:name": {}, "f:port": {}}}},
    }
    other = {"apiVersion": "example.com/v1", "kind": "Gateway", "metadata": {"name": "g"},
             "spec": {"ports": [{"name": "https", "port": 443}], "hosts": ["b.example"]}}
    merged = apply(obj, other, manager="ops", now=T1, schema=schema, version="example.com/v1")
    assert merged["spec"]["ports"] == [{"name": "http", "port": 80}, {"name": "https", "port": 443}]
    assert merged["spec"]["hosts"] == ["a.example", "b.example"]


def test_invalid_apply_configs() -> None:
    with pytest.raises(InvalidApply, match="managedFields must be nil"):
        apply(None, {**deployment(), "metadata": {"name": "x", "managedFields": []}})
    with pytest.raises(InvalidApply, match="Incorrect version"):
        apply(None, {**deployment(), "apiVersion": "apps/v1beta1"})
    dup = deployment()
    dup["spec"]["template"]["spec"]["containers"].append({"name": "nginx", "image": "x"})
    with pytest.raises(InvalidApply, match="duplicate entries"):
        apply(None, dup)


def test_kubectl_takes_over_client_side_apply_fields() -> None:
    # Created by client-side apply: last-applied annotation, Update entry.
    config = deployment()
    annotated = copy.deepcopy(config)
    annotated["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(config)}
    live = copy.deepcopy(annotated)
    update_managed_fields(None, live, "kubectl-client-side-apply", DEPLOY, "apps/v1", T0)
    assert managers(live) == [("kubectl-client-side-apply", "Update")]

    with pytest.raises(ApplyConflict):  # another manager has no such allowance
        apply(live, deployment(replicas=9), manager="other", now=T1)
    # kubectl's server-side apply of changed values: the CSA-owned fields are taken over.
    after = apply(live, deployment(replicas=9), now=T1)
    assert after["spec"]["replicas"] == 9
    assert "f:replicas" in entry(after, "kubectl")["fieldsV1"]["f:spec"]
    last = json.loads(after["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["replicas"] == 9


def test_apply_does_not_mutate_inputs() -> None:
    live = scale(apply(None, deployment()), 5)
    live_copy, config = copy.deepcopy(live), deployment(replicas=2)
    apply(live, config, force=True)
    assert live == live_copy and config == deployment(replicas=2)


def test_status_subresource_apply_is_its_own_manager() -> None:
    obj = apply(None, deployment())
    status = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
              "spec": {"replicas": 50}, "status": {"replicas": 3, "readyReplicas": 3}}
    after = server_side_apply(obj, status, "controller", False, DEPLOY, "apps/v1", T1, subresource="status")
    e = entry(after, "controller")
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}  # spec is not owned here
    with pytest.raises(ApplyConflict) as err:
        server_side_apply(after, {**status, "status": {"replicas": 1}}, "other", False, DEPLOY, "apps/v1", T2,
                          subresource="status")
    assert err.value.causes()[0]["message"] == 'conflict with "controller" with subresource "status"'


def test_main_resource_can_ignore_status() -> None:
    config = {**deployment(), "status": {"replicas": 9}}
    obj = server_side_apply(None, config, "kubectl", False, DEPLOY, "apps/v1", T0, ignored_fields=["status"])
    assert "f:status" not in entry(obj, "kubectl")["fieldsV1"]

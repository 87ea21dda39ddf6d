"""managedFields for ordinary creates, updates and patches."""

from __future__ import annotations

import copy
from typing import Any

from sampan.api import schemas
from sampan.api.apply import server_side_apply, update_managed_fields

T0, T1, T2 = "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"
DEPLOY = schemas.schema_for("apps", "v1", "Deployment")


def created_deployment() -> dict[str, Any]:
    """`kubectl create deployment nginx --image=nginx` after defaulting."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                                    "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                    "terminationMessagePolicy": "File"}],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


def create(obj: dict[str, Any], manager: str = "kubectl-create") -> dict[str, Any]:
    new = copy.deepcopy(obj)
    update_managed_fields(None, new, manager, DEPLOY, "apps/v1", T0)
    return new


def update(old: dict[str, Any], change: Any, manager: str, now: str = T1, **kw: Any) -> dict[str, Any]:
    new = copy.deepcopy(old)
    change(new)
    update_managed_fields(old, new, manager, DEPLOY, "apps/v1", now, **kw)
    return new


def fields(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    [entry] = [e for e in obj["metadata"]["managedFields"] if e["manager"] == manager]
    return entry["fieldsV1"]


def test_create_records_update_entry_like_apiserver() -> None:
    obj = create(created_deployment())
    [entry] = obj["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "fieldsV1"} == {
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1"}
    f = entry["fieldsV1"]
    # As kube-apiserver records it: new maps and list items carry ".", structs don't.
    assert f["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert list(f["f:spec"]) == ["f:progressDeadlineSeconds", "f:replicas", "f:revisionHistoryLimit",
                                 "f:selector", "f:strategy", "f:template"]
    assert f["f:spec"]["f:selector"] == {}
    template = f["f:spec"]["f:template"]
    assert template["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert template["f:spec"]["f:containers"] == {'k:{"name":"nginx"}': {
        ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
        "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}}
    assert template["f:spec"]["f:securityContext"] == {}


def test_update_moves_changed_fields_to_the_writer() -> None:
    obj = create(created_deployment())
    scaled = update(obj, lambda o: o["spec"].update(replicas=4), "kubectl-scale")
    assert [e["manager"] for e in scaled["metadata"]["managedFields"]] == ["kubectl-create", "kubectl-scale"]
    assert fields(scaled, "kubectl-scale") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields(scaled, "kubectl-create")["f:spec"]
    # The same manager again merges into its entry and refreshes its time.
    again = update(scaled, lambda o: o["spec"].update(revisionHistoryLimit=3), "kubectl-scale", now=T2)
    assert fields(again, "kubectl-scale") == {"f:spec": {"f:replicas": {}, "f:revisionHistoryLimit": {}}}
    assert [e["time"] for e in again["metadata"]["managedFields"]] == [T0, T2]


def test_removed_fields_leave_every_manager() -> None:
    obj = create(created_deployment())
    trimmed = update(obj, lambda o: o["metadata"].pop("labels"), "editor")
    assert "f:metadata" not in fields(trimmed, "kubectl-create")
    assert all(e["manager"] != "editor" for e in trimmed["metadata"]["managedFields"])  # changed nothing it keeps


def test_no_change_keeps_entries_and_times() -> None:
    obj = create(created_deployment())
    same = update(obj, lambda o: o["metadata"].update(resourceVersion="7"), "other")
    assert same["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_status_writes_are_a_separate_entry() -> None:
    obj = create(created_deployment())
    status = update(obj, lambda o: o.update(status={"replicas": 1}), "kube-controller-manager",
                    subresource="status")
    entries = status["metadata"]["managedFields"]
    assert entries[-1]["subresource"] == "status"
    assert entries[-1]["fieldsV1"] == {"f:status": {".": {}, "f:replicas": {}}}


def test_client_managed_fields_are_kept_or_reset() -> None:
    obj = create(created_deployment())
    # A client (kubectl's csaupgrade) rewrites managedFields with a patch.
    rewritten = copy.deepcopy(obj["metadata"]["managedFields"])
    rewritten[0]["manager"] = "kubectl"
    rewritten[0]["operation"] = "Apply"
    patched = update(obj, lambda o: o["metadata"].update(managedFields=rewritten), "kubectl")
    assert [(e["manager"], e["operation"]) for e in patched["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    # An empty list, or one empty entry, clears them and tracking stops.
    for reset in ([], [{}]):
        cleared = update(obj, lambda o, r=reset: o["metadata"].update(managedFields=r), "kubectl")
        assert "managedFields" not in cleared["metadata"]
        later = update(cleared, lambda o: o["spec"].update(replicas=2), "kubectl-scale")
        assert "managedFields" not in later["metadata"]
    # Clients that drop managedFields don't erase them.
    dropped = update(obj, lambda o: o["metadata"].pop("managedFields"), "legacy")
    assert dropped["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_apply_after_updates_sorts_apply_first() -> None:
    obj = create(created_deployment())
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"},
              "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}}
    applied = server_side_apply(obj, config, "argocd", False, DEPLOY, "apps/v1", T2)
    assert [(e["manager"], e["operation"]) for e in applied["metadata"]["managedFields"]] == [
        ("argocd", "Apply"), ("kubectl-create", "Update")]


def test_update_entries_are_capped() -> None:
    obj = create(created_deployment())
    for i in range(12):
        obj = update(obj, lambda o, i=i: o["metadata"]["labels"].update({f"l{i}": "x"}), f"writer-{i}",
                     now=f"2024-05-01T11:{i:02d}:00Z")
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers and "writer-11" in managers and "kubectl-create" not in managers

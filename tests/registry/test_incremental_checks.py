"""Updates check only what changed against the stored object: the outcome (error message, or
the pruned object and its warnings) must equal the full check of the whole object."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from sampan.api import errors, schemas
from sampan.api.defaults import apply_defaults
from sampan.api.validation.structural import same_json
from sampan.apiserver.resources import ResourceInfo
from sampan.registry import hooks
from tests.harness import json_paths


def info(group: str, version: str, plural: str, kind: str) -> ResourceInfo:
    return ResourceInfo(group, version, plural, plural[:-1], kind, True,
                        schema=schemas.schema_for(group, version, kind))


LEASE_INFO = info("coordination.k8s.io", "v1", "leases", "Lease")
POD_INFO = info("", "v1", "pods", "Pod")
DEPLOY_INFO = info("apps", "v1", "deployments", "Deployment")

LEASE = {
    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
    "metadata": {"name": "n1", "namespace": "kube-node-lease", "resourceVersion": "7",
                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u1"}],
                 "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "coordination.k8s.io/v1",
                                    "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                                    "fieldsV1": {"f:spec": {"f:renewTime": {}}}}]},
    "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2026-01-01T00:00:00.000000Z"},
}


def pod() -> dict:
    p = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [
            {"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
             "resources": {"limits": {"cpu": "1"}}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.2",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                   "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "nginx",
                                          "imageID": "x", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
    }
    apply_defaults(p, "", "v1", "Pod")
    return p


def deployment() -> dict:
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                  "template": {"metadata": {"labels": {"app": "d"}},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    apply_defaults(d, "apps", "v1", "Deployment")
    return d


def outcome(new: dict, old: dict | None, ri: ResourceInfo, mode: str) -> tuple[Any, ...]:
    obj, warnings = copy.deepcopy(new), []
    try:
        hooks.check_decoding(obj, ri, mode, warnings, old)
    except errors.APIError as exc:
        return ("error", exc.code, exc.status["message"])
    return ("ok", obj, warnings)


def assert_same(new: dict, old: dict, ri: ResourceInfo, mode: str = "Strict") -> tuple[Any, ...]:
    full = outcome(new, None, ri, mode)
    quick = outcome(new, old, ri, mode)
    assert quick == full
    # Type-exact: True and 1, 1.0 and 1 are equal in Python but not as JSON.
    if full[0] == "ok":
        assert same_json(quick[1], full[1])
    return full


def test_renewal_checks_pass_and_keep_the_object():
    new = copy.deepcopy(LEASE)
    new["spec"]["renewTime"] = "2026-01-01T00:00:10.000000Z"
    result = assert_same(new, LEASE, LEASE_INFO)
    assert result[0] == "ok" and result[1]["spec"]["renewTime"] == "2026-01-01T00:00:10.000000Z"


@pytest.mark.parametrize("value", [True, 40.0, "40", [40], {"a": 1}])
def test_a_changed_type_is_still_refused(value):
    new = copy.deepcopy(LEASE)
    new["spec"]["leaseDurationSeconds"] = value
    result = assert_same(new, LEASE, LEASE_INFO)
    if value == 40.0:  # a whole float decodes into an int upstream too
        assert result[0] == "ok"
    else:
        assert result[0] == "error" and result[1] == 400
        assert "spec.leaseDurationSeconds" in result[2]


def test_bool_for_an_int_equal_in_python_is_refused():
    old = copy.deepcopy(LEASE)
    old["spec"]["leaseDurationSeconds"] = 1
    new = copy.deepcopy(old)
    new["spec"]["leaseDurationSeconds"] = True  # True == 1 in Python
    result = assert_same(new, old, LEASE_INFO)
    assert result[0] == "error" and "of type int32" in result[2]


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore"])
def test_unknown_fields_in_changed_parts(mode):
    old = pod()
    new = copy.deepcopy(old)
    new["status"]["containerStatuses"][0]["bogus"] = 1
    new["spec"]["containers"][0]["ports"].append({"containerPort": 81, "extra": "x"})
    result = assert_same(new, old, POD_INFO, mode)
    if mode == "Strict":
        assert result[0] == "error" and 'unknown field "status.containerStatuses[0].bogus"' in result[2]
    else:
        assert result[0] == "ok" and "bogus" not in result[1]["status"]["containerStatuses"][0]
        assert "extra" not in result[1]["spec"]["containers"][0]["ports"][1]
        assert (len(result[2]) == 2) == (mode == "Warn")


def test_reordered_keys_and_status_changes():
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"] = dict(reversed(list(new["spec"].items())))
    new["status"] = {"replicas": 2, "readyReplicas": 1, "conditions": [{"type": "Available", "status": "False"}]}
    assert assert_same(new, old, DEPLOY_INFO)[0] == "ok"


POOL: list[Any] = [True, False, 1, 0, 1.0, 2.5, "x", "", None, {}, [], {"unknownKey": 1}, [{"name": "y"}], [1], ["s"]]


def _set(obj: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_match_the_full_check(seed):
    rnd = random.Random(seed)
    for ri, base in ((POD_INFO, pod()), (LEASE_INFO, LEASE), (DEPLOY_INFO, deployment())):
        paths = [p for p in json_paths(base) if p and p[0] not in ("apiVersion", "kind")]
        for _ in range(150):
            new = copy.deepcopy(base)
            for path in rnd.sample(paths, rnd.randint(1, 3)):
                try:
                    _set(new, path, copy.deepcopy(rnd.choice(POOL)))
                except (KeyError, IndexError, TypeError):
                    pass  # an earlier change replaced a parent
            for mode in ("Strict", "Ignore"):
                assert_same(new, base, ri, mode)


def test_same_json_is_type_exact():
    assert same_json({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c"}]})
    assert not same_json({"a": True}, {"a": 1})
    assert not same_json([1.0], [1])
    assert not same_json(1, True)
    assert same_json(None, None) and not same_json(None, {})


def test_pod_rules_skip_an_unchanged_spec_only():
    from sampan.api.validation import validate_builtin

    old = pod()
    status_only = copy.deepcopy(old)
    status_only["status"]["phase"] = "Succeeded"
    assert validate_builtin(status_only, "", "Pod", old) == validate_builtin(status_only, "", "Pod") == []
    bad = copy.deepcopy(old)
    bad["spec"]["containers"][0]["name"] = "Not_A_Name"
    full = validate_builtin(bad, "", "Pod")
    assert full and validate_builtin(bad, "", "Pod", old)[: len(full)] == full


@pytest.mark.parametrize("change", [
    {"labels": {"app": "-bad-"}}, {"annotations": {"a/b/c": "x"}}, {"finalizers": ["no-slash-here"]},
    {"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "", "uid": ""}]}, {"generation": -1},
])
def test_metadata_rules_run_when_what_they_read_changed(change):
    from sampan.api.validation import validate_builtin

    old = pod()
    new = copy.deepcopy(old)
    new["metadata"].update(change)
    full = validate_builtin(new, "", "Pod")
    assert full and validate_builtin(new, "", "Pod", old)[: len(full)] == full
    renewed = copy.deepcopy(old)
    renewed["metadata"]["resourceVersion"] = "99"  # not read by the rules
    assert validate_builtin(renewed, "", "Pod", old) == []

import copy

from sampan.api import schemas
from sampan.api.defaults import apply_defaults
from sampan.api.validation import invalid_status_message, strict_decoding_message, validate_builtin, validate_schema

DEPLOY = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                   "ports": [{"containerPort": 80}]}]}}},
}


def deployment() -> dict:
    d = copy.deepcopy(DEPLOY)
    apply_defaults(d, "apps", "v1", "Deployment")
    return d


def by_field(causes):
    return {c["field"]: c for c in causes}


def test_valid_deployment_has_no_causes():
    assert validate_builtin(deployment(), "apps", "Deployment") == []


def test_schema_strict_warn_ignore():
    d = deployment()
    d["spec"]["foo"] = 1
    d["spec"]["template"]["spec"]["containers"][0]["bar"] = "x"
    schema = schemas.schema_for("apps", "v1", "Deployment")
    causes, warnings = validate_schema(d, schema, "Strict")
    # document order, like the strict JSON decoder
    assert [c["message"] for c in causes] == ['unknown field "spec.template.spec.containers[0].bar"',
                                              'unknown field "spec.foo"']
    assert causes[1] == {"reason": "FieldValueInvalid", "message": 'unknown field "spec.foo"', "field": "spec.foo"}
    assert strict_decoding_message("Deployment", "v1", causes).endswith(
        'cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].bar", unknown field "spec.foo"')
    causes, warnings = validate_schema(d, schema, "Warn")
    assert causes == [] and warnings[1] == 'unknown field "spec.foo"'
    assert validate_schema(d, schema, "Ignore") == ([], [])


def test_schema_type_errors_and_free_form_fields():
    d = deployment()
    d["spec"]["replicas"] = "two"
    d["metadata"]["annotations"] = {"a": "b"}
    d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1  # int-or-string accepts both
    causes, _ = validate_schema(d, schemas.schema_for("apps", "v1", "Deployment"), "Strict")
    assert len(causes) == 1
    assert causes[0]["field"] == "spec.replicas"
    assert causes[0]["message"] == ("json: cannot unmarshal string into Go struct field "
                                    "DeploymentSpec.spec.replicas of type int32")


def test_schema_for_crd_reports_type_like_upstream():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "integer"}}}}}
    obj = {"apiVersion": "x.io/v1", "kind": "Foo", "metadata": {"name": "a"}, "spec": {"size": "big", "zzz": 1}}
    causes, _ = validate_schema(obj, schema, "Strict")
    assert causes[0]["message"] == 'Invalid value: "string": spec.size in body must be of type integer: "string"'
    assert causes[1]["message"] == 'unknown field "spec.zzz"'


def test_name_and_selector_messages():
    d = deployment()
    d["metadata"]["name"] = "Web"
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    d["spec"]["replicas"] = -1
    causes = by_field(validate_builtin(d, "apps", "Deployment"))
    assert causes["metadata.name"]["message"].startswith(
        'Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of')
    assert causes["spec.template.metadata.labels"]["message"] == (
        'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`')
    assert causes["spec.replicas"]["message"] == "Invalid value: -1: must be greater than or equal to 0"
    msg = invalid_status_message("Deployment", "apps", "Web", [causes["spec.replicas"]])
    assert msg == 'Deployment.apps "Web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'


def test_container_rules():
    d = deployment()
    spec = d["spec"]["template"]["spec"]
    spec["containers"].append({"name": "nginx", "image": "", "ports": [{"containerPort": 70000, "protocol": "TCPX"}],
                               "volumeMounts": [{"name": "missing", "mountPath": "/x"}],
                               "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}})
    causes = by_field(validate_builtin(d, "apps", "Deployment"))
    base = "spec.template.spec.containers[1]"
    assert causes[f"{base}.name"] == {"reason": "FieldValueDuplicate", "message": 'Duplicate value: "nginx"',
                                      "field": f"{base}.name"}
    assert causes[f"{base}.image"]["message"] == "Required value"
    assert causes[f"{base}.ports[0].containerPort"]["message"] == (
        "Invalid value: 70000: must be between 1 and 65535, inclusive")
    assert causes[f"{base}.ports[0].protocol"]["message"] == (
        'Unsupported value: "TCPX": supported values: "SCTP", "TCP", "UDP"')
    assert causes[f"{base}.volumeMounts[0].name"]["reason"] == "FieldValueNotFound"
    assert causes[f"{base}.resources.requests[cpu]"]["message"] == (
        'Invalid value: "2": must be less than or equal to cpu limit of 1')


def test_metadata_rules():
    obj = {"metadata": {"namespace": "Bad_NS", "labels": {"bad key!": "v", "ok": "bad value!"},
                        "finalizers": ["nonstandard"]}, "data": {}}
    causes = validate_builtin(obj, "", "ConfigMap")
    fields = [c["field"] for c in causes]
    assert causes[0] == {"reason": "FieldValueRequired", "field": "metadata.name",
                         "message": "Required value: name or generateName is required"}
    assert "metadata.namespace" in fields and fields.count("metadata.labels") == 2
    assert "metadata.finalizers[0]" in fields
    ns = validate_builtin({"metadata": {"name": "a.b", "namespace": "x"}}, "", "Namespace")
    assert [c["field"] for c in ns] == ["metadata.name", "metadata.namespace"]
    assert ns[1]["message"] == "Forbidden: not allowed on this type"
    ok = validate_builtin({"metadata": {"generateName": "web-", "namespace": "d"}}, "", "Pod"
                          ) + []
    assert all(c["field"] != "metadata.generateName" for c in ok)


def test_service_rules():
    svc = {"metadata": {"name": "1svc", "namespace": "d"},
           "spec": {"type": "Bogus", "ports": [{"port": 80}, {"port": 0, "name": "b"}]}}
    causes = by_field(validate_builtin(svc, "", "Service"))
    assert "a DNS-1035 label" in causes["metadata.name"]["message"]
    assert causes["spec.type"]["reason"] == "FieldValueNotSupported"
    assert causes["spec.ports[0].name"]["message"] == "Required value"
    assert causes["spec.ports[1].port"]["message"].startswith("Invalid value: 0")
    headless = {"metadata": {"name": "h", "namespace": "d"}, "spec": {"clusterIP": "None"}}
    assert validate_builtin(headless, "", "Service") == []
    old = {"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 1}]}}
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.0.0.2"
    assert validate_builtin(new, "", "Service", old)[0]["message"].endswith("may not change once set")


def test_configmap_and_secret():
    cm = {"metadata": {"name": "c", "namespace": "d"}, "data": {"bad key": "x", "big": "x" * (1024 * 1024)}}
    causes = validate_builtin(cm, "", "ConfigMap")
    assert causes[0]["field"] == "data" and "a valid config key" in causes[0]["message"]
    assert causes[-1] == {"reason": "FieldValueTooLong", "field": "",
                          "message": "Too long: may not be more than 1048576 bytes"}
    old = {"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque", "immutable": True, "data": {"a": "YQ=="}}
    new = copy.deepcopy(old)
    new["data"]["a"] = "Yg=="
    new["type"] = "other"
    fields = [c["field"] for c in validate_builtin(new, "", "Secret", old)]
    assert fields == ["type", "data"]


def test_job_and_cronjob():
    job = {"metadata": {"name": "j", "namespace": "d"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    apply_defaults(job, "batch", "v1", "Job")
    causes = by_field(validate_builtin(job, "batch", "Job"))
    assert causes["spec.template.spec.restartPolicy"]["message"] == (
        'Unsupported value: "Always": supported values: "OnFailure", "Never"')
    cron = {"metadata": {"name": "c", "namespace": "d"},
            "spec": {"schedule": "*/5 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    causes = by_field(validate_builtin(cron, "batch", "CronJob"))
    assert causes["spec.schedule"]["message"] == (
        'Invalid value: "*/5 * * *": expected exactly 5 fields, found 4: [*/5 * * *]')
    cron["spec"]["schedule"] = "@hourly"
    assert validate_builtin(cron, "batch", "CronJob") == []
    cron["spec"]["schedule"] = "0 25 * * *"
    assert "above maximum (23)" in validate_builtin(cron, "batch", "CronJob")[0]["message"]


def test_immutable_updates():
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "x": "y"}}
    new["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    causes = validate_builtin(new, "apps", "Deployment", old)
    assert [c["field"] for c in causes] == ["spec.selector"]
    assert causes[0]["message"].endswith("field is immutable")
    pod = {"metadata": {"name": "p", "namespace": "d"},
           "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
    apply_defaults(pod, "", "v1", "Pod")
    upd = copy.deepcopy(pod)
    upd["spec"]["containers"][0]["image"] = "nginx:2"
    upd["spec"]["activeDeadlineSeconds"] = 30
    assert validate_builtin(upd, "", "Pod", pod) == []
    upd["spec"]["restartPolicy"] = "Never"
    causes = validate_builtin(upd, "", "Pod", pod)
    assert causes[0]["field"] == "spec" and causes[0]["reason"] == "FieldValueForbidden"
    meta = copy.deepcopy(pod)
    meta["metadata"]["name"] = "other"
    assert validate_builtin(meta, "", "Pod", pod)[0]["field"] == "metadata.name"


def test_ingress_basics():
    ing = {"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"host": "Bad_Host", "http": {"paths": [
        {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "svc", "port": {"number": 80}}}},
        {"path": "/", "backend": {"service": {"name": "svc", "port": {"name": "http"}}}}]}}]}}
    fields = [c["field"] for c in validate_builtin(ing, "networking.k8s.io", "Ingress")]
    assert fields == ["spec.rules[0].host", "spec.rules[0].http.paths[0].path",
                      "spec.rules[0].http.paths[1].pathType"]


def test_share_process_namespace_excludes_host_pid():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}], "shareProcessNamespace": True}}
    assert validate_builtin(pod, "", "Pod") == []
    pod["spec"]["hostPID"] = True
    cause = by_field(validate_builtin(pod, "", "Pod"))["spec.shareProcessNamespace"]
    assert cause["reason"] == "FieldValueInvalid"
    assert cause["message"] == "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"

import pytest

from sampan.api.fieldsets import (
    convert_field_selector,
    custom_field_set,
    field_set,
    supported_fields,
    validate_custom_field_selector,
    validate_field_selector,
)
from sampan.api.selectors import SelectorError, parse_field_selector

POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default", "hostNetwork": True},
    "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}]},
}


def test_pod_fields():
    fields = field_set("", "pods", POD)
    assert fields == {
        "metadata.name": "web-1",
        "metadata.namespace": "default",
        "spec.nodeName": "n1",
        "spec.restartPolicy": "Always",
        "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default",
        "spec.hostNetwork": "true",
        "status.phase": "Running",
        "status.podIP": "10.42.0.5",
        "status.nominatedNodeName": "",
    }
    assert parse_field_selector("status.phase!=Pending,spec.nodeName=n1").matches(fields)
    empty = field_set("", "pods", {"metadata": {"name": "p", "namespace": "ns"}})
    assert empty["spec.hostNetwork"] == "false" and empty["status.phase"] == ""


def test_supported_sets():
    assert "status.podIPs" in supported_fields("", "pods")
    assert supported_fields("", "configmaps") == {"metadata.name", "metadata.namespace"}
    assert supported_fields("", "nodes") == {"metadata.name", "spec.unschedulable"}
    assert supported_fields("", "namespaces") == {"metadata.name", "status.phase"}
    assert supported_fields("", "secrets") >= {"type", "metadata.namespace"}
    assert supported_fields("batch", "jobs") >= {"status.successful"}
    assert "spec.signerName" in supported_fields("certificates.k8s.io", "certificatesigningrequests")
    assert "involvedObject.name" in supported_fields("", "events")
    assert "regarding.name" in supported_fields("events.k8s.io", "events")


@pytest.mark.parametrize(
    "group, resource, selector, message",
    [
        ("", "pods", "spec.foo=x", "field label not supported: spec.foo"),
        ("", "nodes", "metadata.namespace=x", "field label not supported: metadata.namespace"),
        ("", "configmaps", "data.x=y", '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"'),
        ("apps", "deployments", "spec.replicas=1", '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
        ("batch", "jobs", "status.failed=1", 'field label "status.failed" not supported for batchv1.Job'),
        ("events.k8s.io", "events", "involvedObject.name=x", "field label not supported: involvedObject.name"),
    ],
)
def test_unsupported(group, resource, selector, message):
    with pytest.raises(SelectorError) as err:
        validate_field_selector(group, resource, parse_field_selector(selector))
    assert str(err.value) == message


def test_supported_validate_and_legacy_rename():
    validate_field_selector("", "pods", parse_field_selector("status.phase=Running,metadata.name=a"))
    validate_field_selector("", "configmaps", parse_field_selector("metadata.namespace=default"))
    sel = convert_field_selector("", "pods", parse_field_selector("spec.host=n1"))
    assert sel.requirements == [("spec.nodeName", "=", "n1")]


def test_other_kinds():
    node = {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}}
    assert field_set("", "nodes", node) == {"metadata.name": "n1", "metadata.namespace": "", "spec.unschedulable": "true"}
    secret = {"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls"}
    assert field_set("", "secrets", secret)["type"] == "kubernetes.io/tls"
    ns = {"metadata": {"name": "d"}, "status": {"phase": "Active"}}
    assert field_set("", "namespaces", ns)["status.phase"] == "Active"
    job = {"metadata": {"name": "j", "namespace": "d"}, "status": {"succeeded": 1}}
    assert field_set("batch", "jobs", job)["status.successful"] == "1"
    rc = {"metadata": {"name": "r", "namespace": "d"}, "status": {}}
    assert field_set("", "replicationcontrollers", rc)["status.replicas"] == "0"
    csr = {"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client"}}
    assert field_set("certificates.k8s.io", "certificatesigningrequests", csr)["spec.signerName"] == (
        "kubernetes.io/kube-apiserver-client"
    )
    cr = {"metadata": {"name": "x", "namespace": "d"}, "spec": {"a": 1}}
    assert field_set("example.com", "widgets", cr) == {"metadata.name": "x", "metadata.namespace": "d"}


def test_events():
    ev = {
        "metadata": {"name": "e", "namespace": "d"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "d", "uid": "u1"},
        "reason": "Started", "type": "Normal", "source": {"component": "kubelet"},
    }
    fields = field_set("", "events", ev)
    assert fields["involvedObject.kind"] == "Pod"
    assert fields["involvedObject.fieldPath"] == ""
    assert fields["source"] == "kubelet"
    assert parse_field_selector("involvedObject.name=web-1,involvedObject.kind=Pod,type=Normal").matches(fields)
    ev2 = {"metadata": {"name": "e", "namespace": "d"}, "regarding": {"kind": "Node", "name": "n1"},
           "reportingController": "sampan/scheduler", "reason": "R", "type": "Warning"}
    fields2 = field_set("events.k8s.io", "events", ev2)
    assert fields2["regarding.name"] == "n1" and fields2["source"] == "sampan/scheduler"


def test_custom_resources():
    sel = parse_field_selector("spec.color=red")
    validate_custom_field_selector(sel, cluster_scoped=False, selectable_fields=frozenset({"spec.color"}))
    with pytest.raises(SelectorError, match="field label not supported: spec.color"):
        validate_custom_field_selector(sel, cluster_scoped=False)
    with pytest.raises(SelectorError, match="field label not supported: metadata.namespace"):
        validate_custom_field_selector(parse_field_selector("metadata.namespace=x"), cluster_scoped=True)
    obj = {"metadata": {"name": "w", "namespace": "d"}, "spec": {"color": "red"}}
    assert sel.matches(custom_field_set(obj, False, frozenset({"spec.color"})))

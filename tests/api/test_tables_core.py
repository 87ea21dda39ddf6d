"""Rows for core/v1 kinds besides pods."""

from datetime import datetime, timezone
from typing import Any

from sampan.api.tables import build_table, has_printer

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def md(name: str, created: str = "2025-02-27T09:00:00Z", **extra: Any) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": created, **extra}


def row(resource: str, obj: dict, group: str = "") -> list:
    return build_table(group, resource, [obj], now=NOW)["rows"][0]["cells"]


def names(resource: str, group: str = "") -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in build_table(group, resource, [], now=NOW)["columnDefinitions"]]


def test_node_rows() -> None:
    node = {
        "metadata": md("node-1", labels={"node-role.kubernetes.io/control-plane": "",
                                         "node-role.kubernetes.io/master": "", "kubernetes.io/role": "edge",
                                         "kubernetes.io/hostname": "node-1"}),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "10.0.0.4"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"},
        },
    }
    assert row("nodes", node) == [
        "node-1", "Ready,SchedulingDisabled", "control-plane,edge,master", "2d3h", "v1.32.0", "10.0.0.4",
        "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "containerd://1.7.13",
    ]
    bare = {"metadata": md("node-2"), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert row("nodes", bare)[:3] == ["node-2", "NotReady", "<none>"]
    assert row("nodes", bare)[7:] == ["<unknown>", "<unknown>", "<unknown>"]
    assert row("nodes", {"metadata": md("node-3")})[1] == "Unknown"
    assert names("nodes") == [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0),
                              ("Internal-IP", 1), ("External-IP", 1), ("OS-Image", 1), ("Kernel-Version", 1),
                              ("Container-Runtime", 1)]


def test_services() -> None:
    cluster_ip = {"metadata": md("web"), "spec": {
        "type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "web"}}}
    assert row("services", cluster_ip) == ["web", "ClusterIP", "10.43.0.10", "<none>", "80/TCP,53/UDP", "2d3h",
                                           "app=web"]
    node_port = {"metadata": md("np"), "spec": {"type": "NodePort", "clusterIP": "10.43.0.11",
                                                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}
    assert row("services", node_port)[1:6] == ["NodePort", "10.43.0.11", "<none>", "80:30080/TCP", "2d3h"]
    assert row("services", node_port)[6] == "<none>"
    lb = {"metadata": md("lb"), "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.12", "ports": []}}
    assert row("services", lb)[3:5] == ["<pending>", "<none>"]
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.0.9"}, {"hostname": "lb.example.com"}]}}
    assert row("services", lb)[3] == "198.18.0.9,lb.example.com"
    lb["spec"]["externalIPs"] = ["198.18.0.20"]
    assert row("services", lb)[3] == "198.18.0.9,lb.example.com,198.18.0.20"
    headless = {"metadata": md("db"), "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": []}}
    assert row("services", headless)[1:3] == ["ClusterIP", "None"]
    external = {"metadata": md("ext"), "spec": {"type": "ExternalName", "externalName": "example.com"}}
    assert row("services", external)[2:4] == ["<none>", "example.com"]


def test_endpoints() -> None:
    ep = {"metadata": md("web"), "subsets": [{
        "addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.0.6"}, {"ip": "fd00::7"}],
        "ports": [{"port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090}]}]}
    assert row("endpoints", ep) == ["web", "10.244.0.5:8080,10.244.0.6:8080,[fd00::7]:8080 + 3 more...", "2d3h"]
    assert row("endpoints", {"metadata": md("empty")})[1] == "<none>"
    headless = {"metadata": md("h"), "subsets": [{"addresses": [{"ip": "10.244.0.5"}]}]}
    assert row("endpoints", headless)[1] == "10.244.0.5"


def test_simple_counts() -> None:
    ns = {"metadata": md("kube-system"), "status": {"phase": "Active"}}
    assert row("namespaces", ns) == ["kube-system", "Active", "2d3h"]
    cm = {"metadata": md("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert row("configmaps", cm) == ["cfg", 3, "2d3h"]
    secret = {"metadata": md("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert row("secrets", secret) == ["tls", "kubernetes.io/tls", 2, "2d3h"]
    sa = {"metadata": md("default")}
    assert row("serviceaccounts", sa) == ["default", 0, "2d3h"]
    assert names("secrets") == [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]


def test_persistent_volumes_and_claims() -> None:
    pv = {"metadata": md("pv-1"), "spec": {
        "capacity": {"storage": "10240Mi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
        "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}}
    assert row("persistentvolumes", pv) == ["pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "fast",
                                            "<unset>", "", "2d3h", "Filesystem"]
    pending = {"metadata": md("data"), "spec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "1Gi"}}},
               "status": {"phase": "Pending"}}
    assert row("persistentvolumeclaims", pending) == ["data", "Pending", "", "", "", "", "<unset>", "2d3h",
                                                      "<unset>"]
    bound = {"metadata": md("data", annotations={"volume.beta.kubernetes.io/storage-class": "old"}),
             "spec": {"volumeName": "pv-1", "storageClassName": "fast", "volumeMode": "Block"},
             "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}
    bound["metadata"]["deletionTimestamp"] = "2025-03-01T11:00:00Z"
    assert row("persistentvolumeclaims", bound) == ["data", "Terminating", "pv-1", "1Gi", "RWO", "old",
                                                    "<unset>", "2d3h", "Block"]


def test_resource_quota() -> None:
    quota = {"metadata": md("compute"), "status": {
        "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4000m"},
        "used": {"requests.cpu": "500m", "pods": "3", "limits.memory": "1024Mi"}}}
    assert row("resourcequotas", quota) == ["compute", "pods: 3/10, requests.cpu: 500m/2",
                                            "limits.cpu: 0/4, limits.memory: 1Gi/2Gi", "2d3h"]


def test_replication_controller_and_pod_template() -> None:
    template = {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                        {"name": "sidecar", "image": "busybox"}]}}
    rc = {"metadata": md("web"), "spec": {"replicas": 3, "selector": {"app": "web"}, "template": template},
          "status": {"replicas": 3, "readyReplicas": 2}}
    assert row("replicationcontrollers", rc) == ["web", 3, 3, 2, "2d3h", "nginx,sidecar", "nginx:1.27,busybox",
                                                 "app=web"]
    pt = {"metadata": md("tpl"), "template": template}
    assert row("podtemplates", pt) == ["tpl", "nginx,sidecar", "nginx:1.27,busybox", "app=web,tier=fe"]


def test_events_core_and_new_api() -> None:
    ev = {"metadata": md("web.17f3"), "involvedObject": {"kind": "Pod", "name": "web-1",
                                                         "fieldPath": "spec.containers{nginx}"},
          "reason": "Pulled", "message": "Successfully pulled image\n", "type": "Normal",
          "source": {"component": "kubelet", "host": "node-1"}, "count": 4,
          "firstTimestamp": "2025-03-01T11:00:00Z", "lastTimestamp": "2025-03-01T11:58:00Z"}
    assert row("events", ev) == ["2m", "Normal", "Pulled", "pod/web-1", "spec.containers{nginx}",
                                 "kubelet, node-1", "Successfully pulled image", "60m", 4, "web.17f3"]
    new = {"metadata": md("web.18aa"), "regarding": {"kind": "Deployment", "name": "web"},
           "reason": "ScalingReplicaSet", "note": "Scaled up", "type": "Normal",
           "eventTime": "2025-03-01T11:59:30.123456Z", "reportingController": "deployment-controller",
           "reportingInstance": ""}
    assert row("events", new, "events.k8s.io") == ["29s", "Normal", "ScalingReplicaSet", "deployment/web", "",
                                                   "deployment-controller", "Scaled up", "29s", 1, "web.18aa"]
    assert names("events") == [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
                               ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]


def test_default_columns_for_kinds_without_printer() -> None:
    assert not has_printer("", "limitranges") and has_printer("", "pods")
    for group, resource in [("", "limitranges"), ("rbac.authorization.k8s.io", "roles"),
                            ("rbac.authorization.k8s.io", "clusterroles"),
                            ("apiextensions.k8s.io", "customresourcedefinitions")]:
        table = build_table(group, resource, [{"metadata": md("x")}], now=NOW)
        assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [("Name", "string"),
                                                                                ("Created At", "date")]
        assert table["rows"][0]["cells"] == ["x", "2025-02-27T09:00:00Z"]

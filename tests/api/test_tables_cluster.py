"""Rows for networking, discovery, rbac, policy, scheduling, storage and other cluster kinds."""

from datetime import datetime, timezone

from sampan.api.tables import build_table

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def md(name: str, **extra: object) -> dict:
    return {"name": name, "creationTimestamp": "2025-03-01T09:00:00Z", **extra}


def row(group: str, resource: str, obj: dict) -> list:
    return build_table(group, resource, [obj], now=NOW)["rows"][0]["cells"]


def test_ingress_and_class() -> None:
    ing = {"metadata": md("web"), "spec": {
        "ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
        "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"},
                  {"host": "d.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.2"}, {"ip": "198.18.0.1"}]}}}
    assert row("networking.k8s.io", "ingresses", ing) == [
        "web", "nginx", "a.example.com,b.example.com,c.example.com + 2 more...", "198.18.0.1,198.18.0.2",
        "80, 443", "3h"]
    plain = {"metadata": md("catch-all"), "spec": {"defaultBackend": {"service": {"name": "web"}}}}
    assert row("networking.k8s.io", "ingresses", plain) == ["catch-all", "<none>", "*", "", "80", "3h"]
    ic = {"metadata": md("nginx"), "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {
        "apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}
    assert row("networking.k8s.io", "ingressclasses", ic) == [
        "nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb", "3h"]


def test_network_policy_and_endpoint_slice() -> None:
    np = {"metadata": md("deny"), "spec": {"podSelector": {}}}
    assert row("networking.k8s.io", "networkpolicies", np) == ["deny", "<none>", "3h"]
    np["spec"]["podSelector"] = {"matchLabels": {"role": "db"}}
    assert row("networking.k8s.io", "networkpolicies", np)[1] == "role=db"
    es = {"metadata": md("web-abc12"), "addressType": "IPv4",
          "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}, {"name": "admin"}, {}],
          "endpoints": [{"addresses": ["10.244.0.5"]}, {"addresses": ["10.244.0.6"]}]}
    assert row("discovery.k8s.io", "endpointslices", es) == [
        "web-abc12", "IPv4", "80,443,admin + 1 more...", "10.244.0.5,10.244.0.6", "3h"]
    empty = {"metadata": md("empty"), "addressType": "IPv6"}
    assert row("discovery.k8s.io", "endpointslices", empty)[2:4] == ["<unset>", "<unset>"]


def test_rbac_bindings() -> None:
    rb = {"metadata": md("read-pods"), "roleRef": {"kind": "Role", "name": "pod-reader"},
          "subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "devs"},
                       {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                       {"kind": "User", "name": "joe"}]}
    assert row("rbac.authorization.k8s.io", "rolebindings", rb) == [
        "read-pods", "Role/pod-reader", "3h", "jane, joe", "devs", "build/ci"]
    table = build_table("rbac.authorization.k8s.io", "clusterrolebindings", [])
    assert [(c["name"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("Name", 0), ("Role", 0), ("Age", 0), ("Users", 1), ("Groups", 1), ("ServiceAccounts", 1)]


def test_pdb_priority_class_lease() -> None:
    pdb = {"metadata": md("web"), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}
    assert row("policy", "poddisruptionbudgets", pdb) == ["web", "50%", "N/A", 1, "3h"]
    pdb["spec"] = {"maxUnavailable": 1}
    assert row("policy", "poddisruptionbudgets", pdb)[1:3] == ["N/A", "1"]
    pc = {"metadata": md("system-cluster-critical"), "value": 2000000000, "preemptionPolicy": "PreemptLowerPriority"}
    assert row("scheduling.k8s.io", "priorityclasses", pc) == [
        "system-cluster-critical", 2000000000, False, "3h", "PreemptLowerPriority"]
    lease = {"metadata": md("node-1"), "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert row("coordination.k8s.io", "leases", lease) == ["node-1", "node-1", "3h"]
    assert row("coordination.k8s.io", "leases", {"metadata": md("free"), "spec": {}})[1] == ""


def test_storage_class() -> None:
    sc = {"metadata": md("local-path", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
          "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}
    assert row("storage.k8s.io", "storageclasses", sc) == [
        "local-path (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", False, "3h"]


def test_hpa_and_csr() -> None:
    hpa = {"metadata": md("web"), "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                 "averageUtilization": 80}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35}}}]}}
    assert row("autoscaling", "horizontalpodautoscalers", hpa) == [
        "web", "Deployment/web", "cpu: 35%/80%", "1", 10, 2, "3h"]
    csr = {"metadata": md("csr-1"), "spec": {"signerName": "kubernetes.io/kube-apiserver-client",
                                             "username": "jane", "expirationSeconds": 86400},
           "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}}
    assert row("certificates.k8s.io", "certificatesigningrequests", csr) == [
        "csr-1", "3h", "kubernetes.io/kube-apiserver-client", "jane", "24h", "Approved,Issued"]


def test_every_printer_handles_sparse_objects() -> None:
    from sampan.api.tables.common import PRINTERS

    for group, resource in PRINTERS:
        table = build_table(group, resource, [{"metadata": {"name": "x"}}], now=NOW)
        cells = table["rows"][0]["cells"]
        assert len(cells) == len(table["columnDefinitions"]), (group, resource)
        for definition in table["columnDefinitions"]:
            assert set(definition) == {"name", "type", "format", "description", "priority"}

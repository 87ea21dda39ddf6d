"""The kubectl checklist, continued: nodes, RBAC, kubeconfig, namespaces, preconditions
and bad input, with the real kubectl against a real ``sampan server`` process."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import yaml

from tests.e2e.cluster import Cluster, cluster, needs_kubectl  # noqa: F401
from tests.e2e.test_kubectl_checklist import _kubectl_base, _names, k, ns  # noqa: F401

pytestmark = needs_kubectl


def test_nodes_taint_cordon_drain(cluster: Cluster) -> None:
    node = f"kc-node-{next(_names)}"
    cluster.kubectl("create", "-f", "-", input=f"apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n")
    cluster.kubectl("taint", "nodes", node, "dedicated=gpu:NoSchedule")
    taints = json.loads(cluster.kubectl("get", "node", node, "-o", "jsonpath={.spec.taints}").stdout)
    assert {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"} in taints
    again = cluster.kubectl("taint", "nodes", node, "dedicated=cpu:NoSchedule", check=False)
    assert again.returncode != 0
    cluster.kubectl("taint", "nodes", node, "dedicated=cpu:NoSchedule", "--overwrite")
    cluster.kubectl("taint", "nodes", node, "dedicated:NoSchedule-")
    left = cluster.kubectl("get", "node", node, "-o", "jsonpath={.spec.taints}").stdout
    assert "dedicated" not in left
    assert "cordoned" in cluster.kubectl("cordon", node).stdout
    assert cluster.kubectl("get", "node", node, "-o", "jsonpath={.spec.unschedulable}").stdout == "true"
    ns = f"kc-drain-{next(_names)}"
    cluster.kubectl("create", "namespace", ns)
    # Bound to the node directly; nothing runs it, so eviction deletes it at once (grace 0).
    cluster.kubectl("-n", ns, "create", "-f", "-", input=(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: bound}}\n"
        f"spec: {{nodeName: {node}, containers: [{{name: c, image: busybox}}]}}\n"))
    drained = cluster.kubectl("drain", node, "--ignore-daemonsets", "--force", "--grace-period=0", "--timeout=20s")
    assert "pod/bound evicted" in drained.stdout and "drained" in drained.stdout
    assert cluster.kubectl("-n", ns, "get", "pod", "bound", check=False).returncode != 0
    assert "uncordoned" in cluster.kubectl("uncordon", node).stdout
    described = cluster.kubectl("describe", "node", node).stdout
    assert f"Name:               {node}" in described
    cluster.kubectl("delete", "node", node)


def test_auth_reconcile_and_can_i(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: reader, namespace: {ns}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}
subjects: [{{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}}]
""")
    first = cluster.kubectl("auth", "reconcile", "-f", str(rbac))
    assert "role.rbac.authorization.k8s.io/reader reconciled" in first.stdout
    rbac.write_text(rbac.read_text().replace("verbs: [get]", "verbs: [get, list]"))
    cluster.kubectl("auth", "reconcile", "-f", str(rbac))
    role = json.loads(k(cluster, ns, "get", "role", "reader", "-o", "json").stdout)
    # reconcile adds the missing verb as a rule of its own and keeps the old one.
    assert sorted(v for rule in role["rules"] for v in rule["verbs"]) == ["get", "list"]
    binding = json.loads(k(cluster, ns, "get", "rolebinding", "reader", "-o", "json").stdout)
    assert binding["subjects"][0]["name"] == "alice"
    assert cluster.kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"
    rules = k(cluster, ns, "auth", "can-i", "--list").stdout
    assert rules.splitlines()[0].split()[0] == "Resources" and "*.*" in rules


def test_config_commands(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    shutil.copy(cluster.kubeconfig, config)

    def kc(*args: str) -> str:
        done = subprocess.run([*_kubectl_base(cluster, config), *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert kc("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").startswith(
        "https://127.0.0.1:")
    context = kc("config", "current-context").strip()
    assert context in kc("config", "get-contexts", "-o", "name").split()
    kc("config", "set-context", "--current", f"--namespace={ns}")
    kc("create", "configmap", "via-context")
    assert "configmap/via-context" in k(cluster, ns, "get", "cm", "-o", "name").stdout
    kc("config", "set-context", "other", f"--cluster={cluster_name(cluster)}", f"--user={user_name(cluster)}",
       "--namespace=default")
    kc("config", "use-context", "other")
    assert kc("config", "current-context").strip() == "other"
    assert "via-context" not in kc("get", "cm", "-o", "name")
    flattened = yaml.safe_load(kc("config", "view", "--flatten"))
    assert flattened["clusters"][0]["cluster"]["certificate-authority-data"]
    assert "is running at" in kc("cluster-info")


def test_bad_input_is_rejected(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\ndata: [\n")
    broken = k(cluster, ns, "apply", "-f", str(bad_yaml), check=False)
    assert broken.returncode != 0 and "error converting YAML to JSON" in broken.stderr
    unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unk}\nbogus: 1\n"
    for verb in ("apply", "create"):
        strict = k(cluster, ns, verb, "-f", "-", "--validate=strict", input=unknown, check=False)
        assert strict.returncode != 0 and 'strict decoding error: unknown field "bogus"' in strict.stderr
    warned = k(cluster, ns, "apply", "-f", "-", "--validate=warn", input=unknown)
    assert 'unknown field "bogus"' in warned.stderr
    assert "bogus" not in json.loads(k(cluster, ns, "get", "cm", "unk", "-o", "json").stdout)
    invalid = k(cluster, ns, "create", "configmap", "Bad_Name", check=False)
    assert invalid.returncode != 0 and 'metadata.name: Invalid value: "Bad_Name"' in invalid.stderr
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                               "data": {"a": "x" * (3 * 1024 * 1024 + 10)}}))
    too_large = k(cluster, ns, "create", "-f", str(big), check=False)
    assert too_large.returncode != 0 and "RequestEntityTooLarge" in too_large.stderr
    over_limit = tmp_path / "over.json"
    over_limit.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "over"},
                                      "data": {"a": "x" * (1024 * 1024 + 10)}}))
    too_long = k(cluster, ns, "create", "-f", str(over_limit), check=False)
    assert too_long.returncode != 0 and "Too long" in too_long.stderr
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wk"}}))
    url = f"/api/v1/namespaces/{ns}/configmaps"
    wrong_kind = cluster.kubectl("create", "--raw", url, "-f", str(secret), check=False)
    assert wrong_kind.returncode != 0 and "does not match the expected kind (ConfigMap)" in wrong_kind.stderr
    other_ns = tmp_path / "other.json"
    other_ns.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "o", "namespace": "elsewhere"}}))
    mismatch = cluster.kubectl("create", "--raw", url, "-f", str(other_ns), check=False)
    assert mismatch.returncode != 0 and "does not match the namespace" in mismatch.stderr
    no_type = cluster.kubectl("get", "foos", check=False)
    assert no_type.returncode != 0 and 'the server doesn\'t have a resource type "foos"' in no_type.stderr
    no_path = cluster.kubectl("get", "--raw", "/apis/nope.example/v1", check=False)
    assert no_path.returncode != 0 and "NotFound" in no_path.stderr
    missing_ns = cluster.kubectl("create", "configmap", "x", "-n", "no-such-ns", check=False)
    assert missing_ns.returncode != 0 and 'namespaces "no-such-ns" not found' in missing_ns.stderr


def cluster_name(cluster: Cluster) -> str:
    return yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["name"]


def user_name(cluster: Cluster) -> str:
    return yaml.safe_load(cluster.kubeconfig.read_text())["users"][0]["name"]


def test_preconditions_replace_force_and_proxy(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    k(cluster, ns, "create", "configmap", "r", "--from-literal=a=1")
    stale = k(cluster, ns, "label", "cm", "r", "x=y", "--resource-version=1", check=False)
    assert stale.returncode != 0 and "the object has been modified" in stale.stderr
    uid = k(cluster, ns, "get", "cm", "r", "-o", "jsonpath={.metadata.uid}").stdout
    live = yaml.safe_load(k(cluster, ns, "get", "cm", "r", "-o", "yaml").stdout)
    live["data"]["a"] = "2"
    manifest = tmp_path / "r.yaml"
    manifest.write_text(yaml.safe_dump(live))
    out = k(cluster, ns, "replace", "--force", "-f", str(manifest)).stdout
    assert 'configmap "r" deleted' in out and "configmap/r replaced" in out
    assert k(cluster, ns, "get", "cm", "r", "-o", "jsonpath={.metadata.uid}").stdout != uid
    conflict = k(cluster, ns, "apply", "--server-side", "-f", "-", check=False,
                 input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: r}\ndata: {a: '3'}\n")
    assert conflict.returncode != 0 and "Apply failed with 1 conflict" in conflict.stderr
    forced = k(cluster, ns, "apply", "--server-side", "--force-conflicts", "-f", "-",
               input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: r}\ndata: {a: '3'}\n")
    assert "serverside-applied" in forced.stdout
    proxy = subprocess.Popen([*_kubectl_base(cluster), "proxy", "--port=0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline()
        assert "Starting to serve on 127.0.0.1:" in line
        port = line.strip().rsplit(":", 1)[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/namespaces/{ns}/configmaps/r", timeout=10) as resp:
            assert json.load(resp)["data"] == {"a": "3"}
    finally:
        proxy.terminate()
        proxy.wait(10)


def test_namespace_deletion(cluster: Cluster) -> None:
    name = f"kc-gone-{next(_names)}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("-n", name, "create", "configmap", "inside")
    assert f'namespace "{name}" deleted' in cluster.kubectl("delete", "namespace", name, "--timeout=60s").stdout
    assert cluster.kubectl("get", "namespace", name, check=False).returncode != 0
    refused = cluster.kubectl("-n", name, "create", "configmap", "late", check=False)
    assert refused.returncode != 0 and "not found" in refused.stderr


def test_server_logged_no_errors(cluster: Cluster) -> None:
    """Runs last in this module: no request above hit a server bug (answered 500)."""
    failures = [line for line in cluster.output if "internal error serving" in line or "Error handling request" in line]
    assert failures == []

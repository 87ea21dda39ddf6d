"""The kubectl P0/P1 checklist (shared/reference/kubectl-compat.md) with the real kubectl
against a real ``sampan server`` process: commands that need no running pods.
Nodes, RBAC, kubeconfig, namespaces and bad input are in test_kubectl_checklist_cluster.py."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.cluster import Cluster, cluster, needs_kubectl  # noqa: F401

pytestmark = needs_kubectl

_names = itertools.count()

CONFIGMAPS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: m1, labels: {set: pruned}}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: m2, labels: {set: pruned}}
data: {a: "2"}
"""


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"kc-{next(_names)}"
    cluster.kubectl("create", "namespace", name)
    return name


def k(cluster: Cluster, ns: str, *args: str, check: bool = True,
      input: str | None = None) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("-n", ns, *args, check=check, input=input)


def test_get_output_formats(cluster: Cluster, ns: str) -> None:
    k(cluster, ns, "create", "configmap", "zeta", "--from-literal=n=3")
    k(cluster, ns, "create", "configmap", "alpha", "--from-literal=n=1", "--from-literal=m=2")
    k(cluster, ns, "label", "configmap", "alpha", "tier=web", "env=dev")
    k(cluster, ns, "label", "configmap", "alpha", "zeta", f"fmt={ns}")

    def get(*args: str) -> str:
        # Only the two maps made here, whatever else the namespace holds.
        return k(cluster, ns, "get", "cm", "-l", f"fmt={ns}", *args).stdout

    as_json = json.loads(k(cluster, ns, "get", "cm", "alpha", "-o", "json").stdout)
    assert as_json["kind"] == "ConfigMap" and as_json["data"] == {"n": "1", "m": "2"}
    listed = yaml.safe_load(get("-o", "yaml"))
    assert listed["kind"] == "List" and {i["metadata"]["name"] for i in listed["items"]} == {"alpha", "zeta"}
    wide = get("-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "DATA", "AGE"] and wide[1].split()[:2] == ["alpha", "2"]
    assert get("-o", "name").split() == ["configmap/alpha", "configmap/zeta"]
    assert get("-o", "jsonpath={.items[*].data.n}") == "1 3"
    columns = get("-o", "custom-columns=NAME:.metadata.name,N:.data.n").split()
    assert columns == ["NAME", "N", "alpha", "1", "zeta", "3"]
    template = "{{range .items}}{{.metadata.name}}={{.data.n}};{{end}}"
    assert get("-o", f"go-template={template}") == "alpha=1;zeta=3;"
    labelled = k(cluster, ns, "get", "cm", "alpha", "--show-labels").stdout.splitlines()
    assert labelled[0].split()[-1] == "LABELS" and labelled[1].split()[-1] == f"env=dev,fmt={ns},tier=web"
    columns_l = get("-L", "tier", "-L", "env").splitlines()
    assert columns_l[0].split()[-2:] == ["TIER", "ENV"] and columns_l[1].split()[-2:] == ["web", "dev"]
    assert get("--sort-by=.data.n", "-o", "name").split() == ["configmap/alpha", "configmap/zeta"]
    assert get("--sort-by=.metadata.name", "-o", "name").split() == ["configmap/alpha", "configmap/zeta"]
    everywhere = cluster.kubectl("get", "cm", "-A", "-l", f"fmt={ns},tier=web").stdout.splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE" and everywhere[1].split()[:2] == [ns, "alpha"]
    with_managed = yaml.safe_load(k(cluster, ns, "get", "cm", "alpha", "-o", "yaml", "--show-managed-fields").stdout)
    managers = {e["manager"] for e in with_managed["metadata"]["managedFields"]}
    assert {"kubectl-create", "kubectl-label"} <= managers
    without = yaml.safe_load(k(cluster, ns, "get", "cm", "alpha", "-o", "yaml").stdout)
    assert "managedFields" not in without["metadata"]


def test_raw_api_versions_and_explain(cluster: Cluster, ns: str) -> None:
    namespace = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}").stdout)
    assert namespace["kind"] == "Namespace" and namespace["status"]["phase"] == "Active"
    assert json.loads(cluster.kubectl("get", "--raw", "/version").stdout)["minor"] == "32"
    assert json.loads(cluster.kubectl("get", "--raw", "/apis/apps/v1").stdout)["groupVersion"] == "apps/v1"
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    versions = cluster.kubectl("api-versions").stdout.split()
    assert {"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"} <= set(versions)
    cluster_scoped = cluster.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split()
    assert "nodes" in cluster_scoped and "configmaps" not in cluster_scoped
    recursive = cluster.kubectl("explain", "deployment.spec", "--recursive").stdout
    assert "replicas\t<integer>" in recursive and "template\t<PodTemplateSpec>" in recursive
    field = cluster.kubectl("explain", "pods.spec.containers.image").stdout
    assert "FIELD: image <string>" in field and "Container image name" in field


def test_create_from_literal_file_and_env(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("port: 80\n")
    (tmp_path / "env").write_text("A=1\nB=two\n")
    k(cluster, ns, "create", "secret", "generic", "s", "--from-literal=user=admin",
      f"--from-file={tmp_path / 'app.conf'}", "--from-file=renamed=" + str(tmp_path / "app.conf"))
    secret = json.loads(k(cluster, ns, "get", "secret", "s", "-o", "json").stdout)
    decoded = {key: base64.b64decode(v).decode() for key, v in secret["data"].items()}
    assert decoded == {"user": "admin", "app.conf": "port: 80\n", "renamed": "port: 80\n"}
    assert secret["type"] == "Opaque"
    k(cluster, ns, "create", "configmap", "c", f"--from-env-file={tmp_path / 'env'}")
    assert json.loads(k(cluster, ns, "get", "cm", "c", "-o", "json").stdout)["data"] == {"A": "1", "B": "two"}
    k(cluster, ns, "create", "secret", "docker-registry", "reg", "--docker-server=r.example",
      "--docker-username=u", "--docker-password=p")
    reg = json.loads(k(cluster, ns, "get", "secret", "reg", "-o", "json").stdout)
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    assert "r.example" in json.loads(base64.b64decode(reg["data"][".dockerconfigjson"]))["auths"]
    # stringData is folded into data on write.
    k(cluster, ns, "apply", "-f", "-", input="apiVersion: v1\nkind: Secret\nmetadata: {name: sd}\nstringData: {k: v}\n")
    stored = json.loads(k(cluster, ns, "get", "secret", "sd", "-o", "json").stdout)
    assert stored["data"] == {"k": "dg=="} and "stringData" not in stored


def test_create_generators(cluster: Cluster, ns: str) -> None:
    """`kubectl create <kind>` sends protobuf bodies."""
    commands = [
        ("job", "j", "--image=busybox", "--", "true"),
        ("cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "true"),
        ("role", "r", "--verb=get", "--resource=pods"),
        ("rolebinding", "rb", "--role=r", "--user=bob"),
        ("serviceaccount", "sa"),
        ("quota", "q", "--hard=pods=10"),
        ("poddisruptionbudget", "pdb", "--selector=app=x", "--min-available=1"),
        ("ingress", "ing", "--rule=foo.example/bar=svc:8080"),
        ("service", "clusterip", "svc", "--tcp=80:8080"),
    ]
    for args in commands:
        assert "created" in k(cluster, ns, "create", *args).stdout
    kinds = k(cluster, ns, "get", "job,cronjob,role,rolebinding,sa,quota,pdb,ingress,svc", "-o", "name").stdout.split()
    for expected in ("job.batch/j", "cronjob.batch/cj", "role.rbac.authorization.k8s.io/r",
                     "rolebinding.rbac.authorization.k8s.io/rb", "serviceaccount/sa", "resourcequota/q",
                     "poddisruptionbudget.policy/pdb", "ingress.networking.k8s.io/ing", "service/svc"):
        assert expected in kinds
    token = k(cluster, ns, "create", "token", "sa").stdout.strip()
    assert token.count(".") == 2
    assert cluster.kubectl("create", "priorityclass", f"pc-{ns}", "--value=100").returncode == 0


def test_create_multi_document_and_directory(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "two.yaml"
    manifest.write_text(CONFIGMAPS)
    out = k(cluster, ns, "create", "-f", str(manifest)).stdout
    assert "configmap/m1 created" in out and "configmap/m2 created" in out
    again = k(cluster, ns, "create", "-f", str(manifest), check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d1}\n")
    # A v1 List is validated on the client against the protobuf /openapi/v2 document.
    (folder / "b.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d2"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "d3"}}]}))
    created = k(cluster, ns, "create", "-f", str(folder)).stdout
    assert {"configmap/d1 created", "configmap/d2 created", "secret/d3 created"} <= set(created.splitlines())
    deleted = k(cluster, ns, "delete", "-f", str(folder)).stdout
    assert 'configmap "d1" deleted' in deleted and 'secret "d3" deleted' in deleted
    bad_list = tmp_path / "bad-list.json"
    bad_list.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d4"}, "bogus": 1}]}))
    rejected = k(cluster, ns, "apply", "-f", str(bad_list), check=False)
    assert rejected.returncode != 0
    assert 'unknown field "bogus" in io.k8s.api.core.v1.ConfigMap' in rejected.stderr


def test_apply_prune_and_last_applied(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(CONFIGMAPS)
    k(cluster, ns, "apply", "-f", str(both))
    k(cluster, ns, "create", "configmap", "bystander")  # not labelled: never pruned
    one = tmp_path / "one.yaml"
    one.write_text(CONFIGMAPS.split("---")[0])
    out = k(cluster, ns, "apply", "--prune", "-l", "set=pruned", "--prune-allowlist=core/v1/ConfigMap",
            "-f", str(one)).stdout
    assert "configmap/m2 pruned" in out
    names = k(cluster, ns, "get", "cm", "-o", "name").stdout.split()
    assert "configmap/m1" in names and "configmap/bystander" in names and "configmap/m2" not in names
    last = json.loads(k(cluster, ns, "apply", "view-last-applied", "configmap/m1", "-o", "json").stdout)
    assert last["data"] == {"a": "1"} and last["metadata"]["labels"] == {"set": "pruned"}
    changed = tmp_path / "changed.yaml"
    changed.write_text(CONFIGMAPS.split("---")[0].replace('a: "1"', 'a: "7"'))
    k(cluster, ns, "apply", "set-last-applied", "-f", str(changed))
    assert json.loads(k(cluster, ns, "apply", "view-last-applied", "cm/m1", "-o", "json").stdout)["data"] == {"a": "7"}
    # set-last-applied changes only the annotation, not the live data.
    assert k(cluster, ns, "get", "cm", "m1", "-o", "jsonpath={.data.a}").stdout == "1"
    k(cluster, ns, "apply", "set-last-applied", "-f", str(changed), "--create-annotation")
    k(cluster, ns, "create", "configmap", "fresh")
    k(cluster, ns, "apply", "set-last-applied", "-f", "-", "--create-annotation",
      input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\ndata: {z: '1'}\n")
    fresh_last = json.loads(k(cluster, ns, "apply", "view-last-applied", "cm/fresh", "-o", "json").stdout)
    assert fresh_last["data"] == {"z": "1"}


def test_patch_label_annotate(cluster: Cluster, ns: str) -> None:
    k(cluster, ns, "create", "configmap", "p", "--from-literal=a=1")
    k(cluster, ns, "patch", "cm", "p", "--type=json", "-p", '[{"op":"replace","path":"/data/a","value":"2"}]')
    k(cluster, ns, "patch", "cm", "p", "--type=merge", "-p", '{"data":{"b":"3"}}')
    k(cluster, ns, "patch", "cm", "p", "-p", '{"data":{"c":"4"}}')  # strategic is the default
    assert json.loads(k(cluster, ns, "get", "cm", "p", "-o", "json").stdout)["data"] == {"a": "2", "b": "3", "c": "4"}
    failed = k(cluster, ns, "patch", "cm", "p", "--type=json", "-p", '[{"op":"test","path":"/data/a","value":"9"}]',
               check=False)
    assert failed.returncode != 0 and "testing value /data/a failed" in failed.stderr
    bad = k(cluster, ns, "patch", "cm", "p", "--type=merge", "-p", "{not json", check=False)
    assert bad.returncode != 0
    k(cluster, ns, "label", "cm", "p", "tier=web")
    clash = k(cluster, ns, "label", "cm", "p", "tier=db", check=False)
    assert clash.returncode != 0 and "--overwrite is false" in clash.stderr
    k(cluster, ns, "label", "cm", "p", "tier=db", "--overwrite")
    assert k(cluster, ns, "get", "cm", "p", "-o", "jsonpath={.metadata.labels.tier}").stdout == "db"
    k(cluster, ns, "label", "cm", "p", "tier-")
    assert k(cluster, ns, "get", "cm", "p", "-o", "jsonpath={.metadata.labels}").stdout in ("", "{}")
    k(cluster, ns, "annotate", "cm", "p", "note=hello")
    k(cluster, ns, "annotate", "cm", "p", "note=bye", "--overwrite")
    assert k(cluster, ns, "get", "cm", "p", "-o", "jsonpath={.metadata.annotations.note}").stdout == "bye"
    k(cluster, ns, "create", "configmap", "q")
    k(cluster, ns, "label", "cm", "--all", "batch=yes")
    batch = k(cluster, ns, "get", "cm", "-l", "batch=yes", "-o", "name").stdout.split()
    assert {"configmap/p", "configmap/q"} <= set(batch)
    k(cluster, ns, "label", "cm", "-l", "batch=yes", "batch-")
    assert "No resources found" in k(cluster, ns, "get", "cm", "-l", "batch").stderr


def test_edit_set_and_rollout_patches(cluster: Cluster, ns: str) -> None:
    k(cluster, ns, "create", "deployment", "web", "--image=nginx:1.25")
    editor = "sed -i -e 's/image: nginx:1.25/image: nginx:1.26/'"
    edit = subprocess.run(
        [*_kubectl_base(cluster), "-n", ns, "edit", "deployment", "web"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "EDITOR": editor, "KUBE_EDITOR": editor},
    )
    assert edit.returncode == 0, edit.stderr
    k(cluster, ns, "set", "env", "deployment/web", "MODE=test")
    k(cluster, ns, "set", "resources", "deployment/web", "--limits=cpu=200m")
    k(cluster, ns, "rollout", "pause", "deployment/web")
    assert k(cluster, ns, "get", "deploy", "web", "-o", "jsonpath={.spec.paused}").stdout == "true"
    k(cluster, ns, "rollout", "resume", "deployment/web")
    k(cluster, ns, "rollout", "restart", "deployment/web")
    live = json.loads(k(cluster, ns, "get", "deploy", "web", "-o", "json").stdout)
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26" and container["env"] == [{"name": "MODE", "value": "test"}]
    assert container["resources"] == {"limits": {"cpu": "200m"}}
    assert "kubectl.kubernetes.io/restartedAt" in live["spec"]["template"]["metadata"]["annotations"]
    assert not live["spec"].get("paused")
    k(cluster, ns, "set", "image", "deployment/web", "nginx=nginx:1.27")
    image = k(cluster, ns, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image.stdout == "nginx:1.27"
    described = k(cluster, ns, "describe", "deployment", "web").stdout
    assert "StrategyType:           RollingUpdate" in described and "nginx:1.27" in described


def test_delete_variants(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        k(cluster, ns, "create", "configmap", name)
    k(cluster, ns, "label", "cm", "a", "b", "group=x")
    dry = k(cluster, ns, "delete", "cm", "-l", "group=x", "--dry-run=server").stdout
    assert "(server dry run)" in dry and len(k(cluster, ns, "get", "cm", "-o", "name").stdout.split()) >= 3
    out = k(cluster, ns, "delete", "cm", "-l", "group=x").stdout
    assert 'configmap "a" deleted' in out and 'configmap "b" deleted' in out and '"c"' not in out
    assert "No resources found" in k(cluster, ns, "delete", "cm", "-l", "group=none").stdout
    k(cluster, ns, "create", "configmap", "held")
    k(cluster, ns, "patch", "cm", "held", "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    # --wait=false returns while the finalizer still holds the object.
    assert 'configmap "held" deleted' in k(cluster, ns, "delete", "cm", "held", "--wait=false").stdout
    held = json.loads(k(cluster, ns, "get", "cm", "held", "-o", "json").stdout)
    assert held["metadata"]["deletionTimestamp"]
    k(cluster, ns, "patch", "cm", "held", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    assert k(cluster, ns, "get", "cm", "held", check=False).returncode != 0
    k(cluster, ns, "create", "secret", "generic", "s1", "--from-literal=a=b")
    everything = k(cluster, ns, "delete", "cm,secret", "--all", "--cascade=foreground").stdout
    assert 'configmap "c" deleted' in everything and 'secret "s1" deleted' in everything
    k(cluster, ns, "create", "configmap", "orphaned")
    forced = k(cluster, ns, "delete", "cm", "orphaned", "--cascade=orphan", "--grace-period=0", "--force")
    assert 'configmap "orphaned" force deleted' in forced.stdout
    missing = k(cluster, ns, "delete", "cm", "never", check=False)
    assert missing.returncode != 0 and 'configmaps "never" not found' in missing.stderr
    assert k(cluster, ns, "delete", "cm", "never", "--ignore-not-found").returncode == 0


def test_events_field_selector(cluster: Cluster, ns: str) -> None:
    for name, reason, kind in (("e1", "Tested", "Warning"), ("e2", "Other", "Normal")):
        k(cluster, ns, "create", "-f", "-", input=(
            f"apiVersion: v1\nkind: Event\nmetadata: {{name: {name}}}\n"
            f"involvedObject: {{kind: Pod, name: p-{name}, namespace: {ns}}}\n"
            f"reason: {reason}\nmessage: hello\ntype: {kind}\n"))
    def names(selector: str) -> list[str]:
        return k(cluster, ns, "get", "events", "--field-selector", selector, "-o", "name").stdout.split()

    assert names("reason=Tested") == ["event/e1"]
    assert names("type!=Warning") == ["event/e2"]
    assert names(f"involvedObject.name=p-e2,involvedObject.namespace={ns}") == ["event/e2"]
    table = k(cluster, ns, "get", "events", "--field-selector", "reason=Tested").stdout
    assert "Warning" in table and "pod/p-e1" in table
    bad = k(cluster, ns, "get", "events", "--field-selector", "bogus=x", check=False)
    assert bad.returncode != 0 and "field label not supported: bogus" in bad.stderr


def test_server_dry_run_and_diff(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    assert "(server dry run)" in k(cluster, ns, "create", "configmap", "dry", "--dry-run=server").stdout
    assert k(cluster, ns, "get", "cm", "dry", check=False).returncode != 0
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: {a: '1'}\n")
    assert "(server dry run)" in k(cluster, ns, "apply", "-f", str(manifest), "--dry-run=server").stdout
    assert k(cluster, ns, "get", "cm", "d", check=False).returncode != 0
    assert k(cluster, ns, "diff", "-f", str(manifest), check=False).returncode == 1  # would create
    k(cluster, ns, "apply", "-f", str(manifest))
    same = k(cluster, ns, "diff", "-f", str(manifest), check=False)
    assert same.returncode == 0 and same.stdout == ""
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: {a: '2'}\n")
    changed = k(cluster, ns, "diff", "-f", str(manifest), check=False)
    assert changed.returncode == 1 and '-  a: "1"' in changed.stdout and '+  a: "2"' in changed.stdout
    assert k(cluster, ns, "get", "cm", "d", "-o", "jsonpath={.data.a}").stdout == "1"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n")
    assert k(cluster, ns, "diff", "-f", str(manifest), check=False).returncode > 1
    patched = k(cluster, ns, "patch", "cm", "d", "-p", '{"data":{"a":"5"}}', "--dry-run=server",
                "-o", "jsonpath={.data.a}")
    assert patched.stdout == "5" and k(cluster, ns, "get", "cm", "d", "-o", "jsonpath={.data.a}").stdout == "1"
    client_side = k(cluster, ns, "create", "configmap", "local", "--dry-run=client", "-o", "yaml").stdout
    assert yaml.safe_load(client_side)["metadata"]["name"] == "local"


def _kubectl_base(cluster: Cluster, kubeconfig: Path | None = None) -> list[str]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    return [kubectl, "--kubeconfig", str(kubeconfig or cluster.kubeconfig), "--cache-dir", str(cluster.cache)]


def test_subresources_and_wait(cluster: Cluster, ns: str) -> None:
    k(cluster, ns, "create", "deployment", "web", "--image=nginx", "--replicas=2")
    scale = k(cluster, ns, "get", "deployment", "web", "--subresource=scale").stdout.splitlines()
    assert scale[0].split() == ["NAME", "DESIRED", "AVAILABLE"] and scale[1].split()[:2] == ["web", "2"]
    scale_json = json.loads(k(cluster, ns, "get", "deployment", "web", "--subresource=scale", "-o", "json").stdout)
    assert scale_json["kind"] == "Scale" and scale_json["spec"]["replicas"] == 2
    precondition = k(cluster, ns, "scale", "deployment", "web", "--current-replicas=5", "--replicas=3", check=False)
    assert precondition.returncode != 0 and "Expected replicas to be 5, was 2" in precondition.stderr
    k(cluster, ns, "scale", "deployment", "web", "--current-replicas=2", "--replicas=3")
    assert k(cluster, ns, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    k(cluster, ns, "create", "service", "clusterip", "svc", "--tcp=80:80")
    condition = {"type": "Ready", "status": "True", "reason": "Tested", "message": "ok",
                 "lastTransitionTime": "2025-01-01T00:00:00Z"}
    k(cluster, ns, "patch", "svc", "svc", "--subresource=status", "--type=merge",
      "-p", json.dumps({"status": {"conditions": [condition]}}))
    assert "condition met" in k(cluster, ns, "wait", "--for=condition=Ready", "svc/svc", "--timeout=20s").stdout
    on_status = k(cluster, ns, "get", "svc", "svc", "--subresource=status",
                  "-o", "jsonpath={.status.conditions[0].type}")
    assert on_status.stdout == "Ready"
    k(cluster, ns, "create", "configmap", "c", "--from-literal=a=1")
    assert "condition met" in k(cluster, ns, "wait", "--for=jsonpath={.data.a}=1", "cm/c", "--timeout=20s").stdout
    timed_out = k(cluster, ns, "wait", "--for=jsonpath={.data.a}=2", "cm/c", "--timeout=1s", check=False)
    assert timed_out.returncode != 0 and "timed out" in timed_out.stderr
    waiter = subprocess.Popen([*_kubectl_base(cluster), "-n", ns, "wait", "--for=delete", "cm/c", "--timeout=30s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        k(cluster, ns, "delete", "cm", "c")
        out, err = waiter.communicate(timeout=40)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err


def test_horizontal_pod_autoscaler_v2(cluster: Cluster, ns: str) -> None:
    k(cluster, ns, "create", "deployment", "web", "--image=nginx")
    k(cluster, ns, "apply", "-f", "-", input="""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
""")
    table = k(cluster, ns, "get", "hpa").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "REFERENCE", "TARGETS"]
    assert table[1].split()[:2] == ["web", "Deployment/web"] and "70%" in table[1]
    assert "horizontalpodautoscaler.autoscaling/web" in k(cluster, ns, "get", "all", "-o", "name").stdout


def test_server_logged_no_errors(cluster: Cluster) -> None:
    """Runs last in this module: no request above hit a server bug (answered 500)."""
    failures = [line for line in cluster.output if "internal error serving" in line or "Error handling request" in line]
    assert failures == []

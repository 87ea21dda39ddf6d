"""kr8s (sync and asyncio APIs) against a real ``sampan server`` process.

Only what works without a node agent: nothing here needs a pod to run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, cluster  # noqa: F401

kr8s = pytest.importorskip("kr8s")

import kr8s.asyncio  # noqa: E402
from kr8s.asyncio.objects import ConfigMap as AsyncConfigMap  # noqa: E402
from kr8s.asyncio.objects import Deployment as AsyncDeployment  # noqa: E402
from kr8s.asyncio.objects import Namespace as AsyncNamespace  # noqa: E402
from kr8s.asyncio.objects import Service as AsyncService  # noqa: E402
from kr8s.objects import (  # noqa: E402
    ConfigMap,
    Namespace,
    Node,
    Pod,
    Secret,
    Service,
    new_class,
    objects_from_files,
)

_names = itertools.count()

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}},
    },
}


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> kr8s.Api:
    return kr8s.api(kubeconfig=str(cluster.kubeconfig))


@pytest.fixture
def namespace(api: kr8s.Api) -> str:
    ns = Namespace({"metadata": {"name": fresh("kr")}}, api=api)
    ns.create()
    return ns.name


def test_version_whoami_and_api_resources(api: kr8s.Api) -> None:
    version = api.version()
    assert (version["major"], version["minor"]) == ("1", "32")
    assert api.whoami() == "system:admin"
    resources = {(r["version"], r["name"]): r for r in api.api_resources()}
    assert resources[("v1", "configmaps")]["namespaced"] is True
    assert resources[("apps/v1", "deployments")]["kind"] == "Deployment"
    assert resources[("v1", "nodes")]["namespaced"] is False
    assert "v1" in set(api.api_versions()) and "apps/v1" in set(api.api_versions())


def test_create_get_list_with_selectors_and_pages(api: kr8s.Api, namespace: str) -> None:
    # More objects than kr8s' page size of 100, so listing needs continue tokens.
    for i in range(105):
        ConfigMap({"metadata": {"name": f"cm{i:03d}", "namespace": namespace,
                                "labels": {"parity": "even" if i % 2 == 0 else "odd"}},
                   "data": {"i": str(i)}}, api=api).create()
    names = [o.name for o in api.get("configmaps", namespace=namespace, label_selector="parity")]
    assert len(names) == 105 and len(set(names)) == 105
    odd = list(api.get("configmaps", namespace=namespace, label_selector={"parity": "odd"}))
    assert len(odd) == 52
    picked = list(api.get("cm", namespace=kr8s.ALL,
                          field_selector=f"metadata.name=cm007,metadata.namespace={namespace}"))
    assert [(o.name, o.namespace, o.raw["data"]) for o in picked] == [("cm007", namespace, {"i": "7"})]
    assert ConfigMap.get("cm042", namespace=namespace, api=api).raw["data"] == {"i": "42"}
    listed = list(ConfigMap.list(namespace=namespace, label_selector="parity in (even),parity!=odd", api=api))
    assert len(listed) == 53
    with pytest.raises(kr8s.NotFoundError):
        ConfigMap.get("missing", namespace=namespace, api=api)


def test_object_helpers(api: kr8s.Api, namespace: str) -> None:
    cm = ConfigMap({"metadata": {"name": "helpers", "namespace": namespace}, "data": {"a": "1"}}, api=api)
    assert not cm.exists()
    cm.create()
    assert cm.exists()
    cm.label(tier="web", env="dev")
    cm.annotate({"note": "hello"})
    cm.remove_label("env")
    other = ConfigMap.get("helpers", namespace=namespace, api=api)
    other.patch({"data": {"b": "2"}})
    cm.refresh()
    assert cm.labels == {"tier": "web"} and cm.annotations == {"note": "hello"}
    assert cm.raw["data"] == {"a": "1", "b": "2"}
    cm.patch([{"op": "remove", "path": "/data/a"}], type="json")
    assert cm.raw["data"] == {"b": "2"}
    cm.delete()
    assert not cm.exists()
    with pytest.raises(kr8s.NotFoundError):
        cm.refresh()


def test_owner_references(api: kr8s.Api, namespace: str) -> None:
    owner = ConfigMap({"metadata": {"name": "owner", "namespace": namespace}}, api=api)
    owner.create()
    child = Secret({"metadata": {"name": "child", "namespace": namespace}, "stringData": {"k": "v"}}, api=api)
    child.create()
    owner.adopt(child)
    live = Secret.get("child", namespace=namespace, api=api)
    refs = live.metadata["ownerReferences"]
    assert [(r["kind"], r["name"], r["uid"]) for r in refs] == [("ConfigMap", "owner", owner.metadata["uid"])]
    assert live.raw["data"] == {"k": "dg=="}
    # The garbage collector removes the dependent once its owner is gone.
    owner.delete(propagation_policy="Background")
    live.wait("delete", timeout=60)
    assert not live.exists()


def test_wait_for_condition_and_delete(api: kr8s.Api, namespace: str) -> None:
    # A Service: no controller writes its conditions.
    svc = Service({"metadata": {"name": "waited", "namespace": namespace},
                   "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}, api=api)
    svc.create()
    condition = {"type": "Ready", "status": "True", "reason": "Tested", "message": "ok",
                 "lastTransitionTime": "2025-01-01T00:00:00Z"}
    svc.patch({"status": {"conditions": [condition]}}, subresource="status")
    svc.wait("condition=Ready", timeout=20)
    svc.wait("jsonpath='{.spec.ports[0].port}'=80", timeout=20)
    assert svc.status["conditions"][0]["type"] == "Ready"
    svc.delete(propagation_policy="Background")
    svc.wait("delete", timeout=20)
    assert not svc.exists()


async def test_scale_and_status_subresources(cluster: Cluster) -> None:
    api = await kr8s.asyncio.api(kubeconfig=str(cluster.kubeconfig))
    namespace = fresh("kr-scale")
    await (await AsyncNamespace({"metadata": {"name": namespace}}, api=api)).create()
    dep = await AsyncDeployment({**DEPLOYMENT, "metadata": {"name": "scaled", "namespace": namespace}}, api=api)
    await dep.create()
    await dep.scale(3)
    assert dep.replicas == 3
    async with api.call_api("GET", version="apps/v1", namespace=namespace, url="deployments/scaled/scale") as resp:
        scale = resp.json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=web"
    await dep.patch({"spec": {"replicas": 5}}, subresource="scale")
    await dep.refresh()
    assert dep.replicas == 5
    # Status on a kind no controller writes: a ClusterIP Service.
    svc = await AsyncService({"metadata": {"name": "st", "namespace": namespace},
                              "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}, api=api)
    await svc.create()
    await svc.patch({"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.7"}]}}}, subresource="status")
    await svc.patch({"spec": {"ports": [{"port": 81}]}}, subresource="status")
    await svc.refresh()
    assert svc.status["loadBalancer"]["ingress"] == [{"ip": "198.18.0.7"}]
    assert svc.spec["ports"][0]["port"] == 80


async def test_server_side_apply_and_strategic_patch_through_call_api(cluster: Cluster) -> None:
    api = await kr8s.asyncio.api(kubeconfig=str(cluster.kubeconfig))
    namespace = fresh("kr-ssa")
    await (await AsyncNamespace({"metadata": {"name": namespace}}, api=api)).create()
    body = {**DEPLOYMENT, "metadata": {"name": "ssa", "namespace": namespace}}
    headers = {"Content-Type": "application/apply-patch+yaml"}
    where = {"version": "apps/v1", "namespace": namespace, "url": "deployments/ssa"}
    async with api.call_api("PATCH", **where, content=json.dumps(body), headers=headers,
                            params={"fieldManager": "kr8s-test"}) as resp:
        assert resp.status_code == 201
    conflicting = {**body, "spec": {**body["spec"], "replicas": 4}}
    with pytest.raises(kr8s.ServerError) as conflict:
        async with api.call_api("PATCH", **where, content=json.dumps(conflicting), headers=headers,
                                params={"fieldManager": "other"}):
            pass
    assert conflict.value.response.status_code == 409
    assert conflict.value.status["details"]["causes"][0]["field"] == ".spec.replicas"
    async with api.call_api("PATCH", **where, content=json.dumps(conflicting), headers=headers,
                            params={"fieldManager": "other", "force": "true"}) as resp:
        assert resp.json()["spec"]["replicas"] == 4
    smp = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}
    async with api.call_api("PATCH", **where, content=json.dumps(smp),
                            headers={"Content-Type": "application/strategic-merge-patch+json"}) as resp:
        containers = resp.json()["spec"]["template"]["spec"]["containers"]
    # Upstream puts patch-only list items ahead of server-only ones.
    assert [c["name"] for c in containers] == ["side", "c"]


def test_watch_and_resume(api: kr8s.Api, namespace: str) -> None:
    mine = {"w": "y"}  # only what this test makes, whatever else lands in the namespace
    first = ConfigMap({"metadata": {"name": "w0", "namespace": namespace, "labels": mine}}, api=api)
    first.create()
    since = first.metadata["resourceVersion"]
    ConfigMap({"metadata": {"name": "w1", "namespace": namespace, "labels": mine}}, api=api).create()
    first.patch({"data": {"k": "v"}})
    first.delete()
    seen = []
    for event, obj in api.watch("configmaps", namespace=namespace, label_selector=mine, since=since):
        seen.append((event, obj.name))
        if event == "DELETED":
            since = obj.metadata["resourceVersion"]
            break
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w0"), ("DELETED", "w0")]
    ConfigMap({"metadata": {"name": "w2", "namespace": namespace, "labels": {"w": "y"}}}, api=api).create()
    for event, obj in api.watch("configmaps", namespace=namespace, label_selector="w=y", since=since):
        assert (event, obj.name) == ("ADDED", "w2")
        break


def test_cluster_scoped_node_helpers(api: kr8s.Api) -> None:
    node = Node({"metadata": {"name": fresh("kr-node")}}, api=api)
    node.create()
    node.cordon()
    node.taint("dedicated", "gpu", effect="NoSchedule")
    node.refresh()
    assert node.unschedulable is True
    assert {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"} in node.taints
    node.uncordon()
    node.taint("dedicated", "gpu", effect="NoSchedule-")
    node.refresh()
    assert not node.unschedulable and "dedicated" not in {t["key"] for t in node.taints or []}
    assert node.name in [n.name for n in api.get("nodes")]
    node.delete()
    assert not node.exists()


def test_generic_classes_and_files(api: kr8s.Api, namespace: str, tmp_path: Path) -> None:
    Generic = new_class(kind="ConfigMap", version="v1", namespaced=True)
    generic = Generic({"metadata": {"name": "generic", "namespace": namespace}, "data": {"g": "1"}}, api=api)
    generic.create()
    assert ConfigMap.get("generic", namespace=namespace, api=api).raw["data"] == {"g": "1"}
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: f1, namespace: {namespace}}}\ndata: {{a: '1'}}\n---\n"
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: f2, namespace: {namespace}}}\nstringData: {{b: '2'}}\n"
    )
    objects = objects_from_files(str(manifest), api=api)
    assert [o.kind for o in objects] == ["ConfigMap", "Secret"]
    for obj in objects:
        obj.create()
    assert Secret.get("f2", namespace=namespace, api=api).raw["data"] == {"b": "Mg=="}
    pod = Pod({"metadata": {"name": "never-runs", "namespace": namespace},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, api=api)
    pod.create()
    assert pod.exists() and pod.raw["spec"]["restartPolicy"] == "Always"
    assert not pod.ready()


def test_generic_class_for_a_crd(api: kr8s.Api, namespace: str) -> None:
    crd = new_class(kind="CustomResourceDefinition", version="apiextensions.k8s.io/v1", namespaced=False)({
        "metadata": {"name": "gadgets.example.org"},
        "spec": {"group": "example.org", "scope": "Namespaced",
                 "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }, api=api)
    crd.create()
    try:
        crd.wait("condition=Established", timeout=10)
    except TimeoutError:
        pytest.skip("CustomResourceDefinitions are not served yet")
    Gadget = new_class(kind="Gadget", version="example.org/v1", namespaced=True)
    Gadget({"metadata": {"name": "g1", "namespace": namespace}, "spec": {"n": 1}}, api=api).create()
    found = list(api.get("gadgets.example.org", namespace=namespace))
    assert [(g.name, g.raw["spec"]) for g in found] == [("g1", {"n": 1})]


async def test_asyncio_api(cluster: Cluster) -> None:
    api = await kr8s.asyncio.api(kubeconfig=str(cluster.kubeconfig))
    assert (await api.version())["minor"] == "32"
    ns = fresh("kra")
    await (await AsyncNamespace({"metadata": {"name": ns}}, api=api)).create()
    cm = await AsyncConfigMap({"metadata": {"name": "a", "namespace": ns}, "data": {"x": "1"}}, api=api)
    await cm.create()
    assert await cm.exists()
    await cm.label({"async": "yes"})
    found = [o.name async for o in api.get("configmaps", namespace=ns, label_selector="async=yes")]
    assert found == ["a"]
    other = await AsyncConfigMap.get("a", namespace=ns, api=api)
    await other.patch({"data": {"x": "2"}})
    # cm still holds the older resourceVersion, so its watch replays the change.
    async for event, obj in cm.watch():
        break
    assert event == "MODIFIED" and obj.raw["data"] == {"x": "2"}
    await cm.delete()
    assert not await cm.exists()


def test_server_logged_no_errors(cluster: Cluster) -> None:
    """Runs last in this module: no request above hit a server bug (answered 500)."""
    failures = [line for line in cluster.output if "internal error serving" in line or "Error handling request" in line]
    assert failures == []

"""lightkube (sync and async clients) against a real ``sampan server`` process.

Only what works without a node agent: nothing here needs a pod to run."""

from __future__ import annotations

import asyncio
import itertools
from typing import Iterator

import pytest

from tests.e2e.cluster import Cluster, cluster  # noqa: F401

lightkube = pytest.importorskip("lightkube")

from lightkube import ApiError, AsyncClient, Client, KubeConfig  # noqa: E402
from lightkube import codecs  # noqa: E402
from lightkube.generic_resource import (  # noqa: E402
    create_namespaced_resource,
    get_generic_resource,
    load_in_cluster_generic_resources,
)
from lightkube.models.meta_v1 import ObjectMeta  # noqa: E402
from lightkube.resources.apps_v1 import Deployment  # noqa: E402
from lightkube.models.core_v1 import ServicePort, ServiceSpec  # noqa: E402
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Secret, Service  # noqa: E402
from lightkube.resources.rbac_authorization_v1 import ClusterRole  # noqa: E402
from lightkube.types import CascadeType, PatchType  # noqa: E402

_names = itertools.count()

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  replicas: 1
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers: [{name: c, image: "nginx:1.25"}]
"""


def service(name: str) -> Service:
    return Service(metadata=ObjectMeta(name=name),
                   spec=ServiceSpec(selector={"app": name}, ports=[ServicePort(port=80)]))


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@pytest.fixture(scope="module")
def config(cluster: Cluster) -> KubeConfig:
    return KubeConfig.from_file(str(cluster.kubeconfig))


@pytest.fixture
def client(config: KubeConfig) -> Iterator[Client]:
    c = Client(config=config, field_manager="lightkube-test")
    yield c
    c._client._client.close()


@pytest.fixture
def namespace(client: Client) -> str:
    name = fresh("lk")
    client.create(Namespace(metadata=ObjectMeta(name=name)))
    return name


def deployment(name: str) -> Deployment:
    return codecs.load_all_yaml(DEPLOYMENT.replace("NAME", name))[0]


def test_create_get_list_selectors_and_pages(client: Client, namespace: str) -> None:
    for i in range(7):
        labels = {"group": "even" if i % 2 == 0 else "odd", "app": "pages"}
        client.create(ConfigMap(metadata=ObjectMeta(name=f"cm{i}", labels=labels), data={"i": str(i)}),
                      namespace=namespace)
    got = client.get(ConfigMap, "cm3", namespace=namespace)
    assert got.data == {"i": "3"} and got.metadata.uid and got.metadata.namespace == namespace
    paged = client.list(ConfigMap, namespace=namespace, chunk_size=2, labels={"app": "pages"})
    assert sorted(o.metadata.name for o in paged) == [f"cm{i}" for i in range(7)]
    assert int(paged.resourceVersion) >= int(got.metadata.resourceVersion)
    even = client.list(ConfigMap, namespace=namespace, labels={"group": "even"})
    assert sorted(o.metadata.name for o in even) == ["cm0", "cm2", "cm4", "cm6"]
    not_even = client.list(
        ConfigMap, namespace=namespace, labels={"app": "pages", "group": lightkube.operators.not_in(["even"])}
    )
    assert sorted(o.metadata.name for o in not_even) == ["cm1", "cm3", "cm5"]
    by_field = client.list(ConfigMap, namespace="*", fields={"metadata.name": "cm5", "metadata.namespace": namespace})
    assert [o.metadata.name for o in by_field] == ["cm5"]
    not_named = client.list(ConfigMap, namespace=namespace,
                            fields={"metadata.name": lightkube.operators.not_equal("cm0")})
    assert "cm0" not in {o.metadata.name for o in not_named}
    with pytest.raises(ApiError) as err:
        list(client.list(ConfigMap, namespace=namespace, fields={"data.i": "1"}))
    assert err.value.status.code == 400


def test_errors_are_status_objects(client: Client, namespace: str) -> None:
    with pytest.raises(ApiError) as missing:
        client.get(ConfigMap, "nope", namespace=namespace)
    status = missing.value.status
    assert (status.code, status.reason, status.details.name, status.details.kind) == (
        404, "NotFound", "nope", "configmaps")
    client.create(ConfigMap(metadata=ObjectMeta(name="twice")), namespace=namespace)
    with pytest.raises(ApiError) as exists:
        client.create(ConfigMap(metadata=ObjectMeta(name="twice")), namespace=namespace)
    assert exists.value.status.reason == "AlreadyExists" and exists.value.status.code == 409
    with pytest.raises(ApiError) as invalid:
        client.create(ConfigMap(metadata=ObjectMeta(name="Not_Valid")), namespace=namespace)
    assert invalid.value.status.code == 422 and invalid.value.status.reason == "Invalid"
    assert invalid.value.status.details.causes[0].field == "metadata.name"


def test_replace_and_conflict(client: Client, namespace: str) -> None:
    obj = client.create(ConfigMap(metadata=ObjectMeta(name="rep"), data={"a": "1"}), namespace=namespace)
    obj.data["a"] = "2"
    replaced = client.replace(obj)
    assert replaced.data == {"a": "2"}
    assert int(replaced.metadata.resourceVersion) > int(obj.metadata.resourceVersion)
    obj.data["a"] = "3"  # still carries the old resourceVersion
    with pytest.raises(ApiError) as err:
        client.replace(obj)
    assert err.value.status.code == 409 and "the object has been modified" in err.value.status.message


def test_patch_types(client: Client, namespace: str) -> None:
    name = fresh("patched")
    client.create(deployment(name), namespace=namespace)
    # lightkube's default is a strategic merge patch: containers merge by name.
    patched = client.patch(Deployment, name, {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "nginx:1.26"}, {"name": "side", "image": "busybox"}]}}}}, namespace=namespace)
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("c", "nginx:1.26"), ("side", "busybox")]
    merged = client.patch(Deployment, name, {"metadata": {"labels": {"m": "1"}}}, namespace=namespace,
                          patch_type=PatchType.MERGE)
    assert merged.metadata.labels == {"m": "1"}
    jsoned = client.patch(Deployment, name, [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 2},
    ], namespace=namespace, patch_type=PatchType.JSON)
    assert jsoned.spec.replicas == 2
    with pytest.raises(ApiError) as failed_test:
        client.patch(Deployment, name, [{"op": "test", "path": "/spec/replicas", "value": 7}],
                     namespace=namespace, patch_type=PatchType.JSON)
    assert failed_test.value.status.code == 422


def test_server_side_apply(client: Client, namespace: str) -> None:
    body = ConfigMap(apiVersion="v1", kind="ConfigMap", metadata=ObjectMeta(name="ssa", namespace=namespace),
                     data={"a": "1", "b": "2"})
    created = client.apply(body, field_manager="alpha")
    assert created.data == {"a": "1", "b": "2"}
    entries = {e.manager: e for e in created.metadata.managedFields}
    assert entries["alpha"].operation == "Apply" and "f:a" in entries["alpha"].fieldsV1["f:data"]
    other = ConfigMap(apiVersion="v1", kind="ConfigMap", metadata=ObjectMeta(name="ssa", namespace=namespace),
                      data={"a": "changed"})
    with pytest.raises(ApiError) as conflict:
        client.apply(other, field_manager="beta")
    assert conflict.value.status.code == 409 and conflict.value.status.reason == "Conflict"
    assert "alpha" in conflict.value.status.message
    forced = client.apply(other, field_manager="beta", force=True)
    assert forced.data == {"a": "changed", "b": "2"}
    owners = {e.manager: e.fieldsV1["f:data"] for e in forced.metadata.managedFields}
    assert set(owners["beta"]) == {"f:a"} and set(owners["alpha"]) == {"f:b"}
    # alpha stops applying b: it is removed because nobody else owns it.
    shrunk = client.apply(ConfigMap(apiVersion="v1", kind="ConfigMap",
                                    metadata=ObjectMeta(name="ssa", namespace=namespace)), field_manager="alpha")
    assert shrunk.data == {"a": "changed"}


def test_delete_with_propagation_and_dry_run(client: Client, namespace: str) -> None:
    client.create(ConfigMap(metadata=ObjectMeta(name="gone")), namespace=namespace)
    client.delete(ConfigMap, "gone", namespace=namespace, dry_run=True)
    assert client.get(ConfigMap, "gone", namespace=namespace).metadata.name == "gone"
    client.delete(ConfigMap, "gone", namespace=namespace, cascade=CascadeType.BACKGROUND)
    with pytest.raises(ApiError) as err:
        client.get(ConfigMap, "gone", namespace=namespace)
    assert err.value.status.code == 404
    # A finalizer keeps a deleted object around until it is removed.
    client.create(ConfigMap(metadata=ObjectMeta(name="held", finalizers=["example.com/hold"])), namespace=namespace)
    client.delete(ConfigMap, "held", namespace=namespace, cascade=CascadeType.FOREGROUND)
    pending = client.get(ConfigMap, "held", namespace=namespace)
    assert pending.metadata.deletionTimestamp is not None and "example.com/hold" in pending.metadata.finalizers
    client.patch(ConfigMap, "held", [{"op": "remove", "path": "/metadata/finalizers/0"}], namespace=namespace,
                 patch_type=PatchType.JSON)
    with pytest.raises(ApiError):
        client.get(ConfigMap, "held", namespace=namespace)
    for i in range(3):
        client.create(Secret(metadata=ObjectMeta(name=f"s{i}"), stringData={"k": "v"}), namespace=namespace)
    client.deletecollection(Secret, namespace=namespace)
    assert list(client.list(Secret, namespace=namespace)) == []


def test_watch_and_resume_from_resource_version(client: Client, namespace: str) -> None:
    # Selected by label so objects other components put into the namespace do not count.
    mine = {"w": "y"}
    client.create(ConfigMap(metadata=ObjectMeta(name="before", labels=mine)), namespace=namespace)
    listing = client.list(ConfigMap, namespace=namespace, labels=mine)
    assert [o.metadata.name for o in listing] == ["before"]
    start = listing.resourceVersion
    client.create(ConfigMap(metadata=ObjectMeta(name="w1", labels=mine)), namespace=namespace)
    client.patch(ConfigMap, "w1", {"data": {"k": "v"}}, namespace=namespace)
    client.delete(ConfigMap, "w1", namespace=namespace)
    seen: list[tuple[str, str]] = []
    last = start
    for event, obj in client.watch(ConfigMap, namespace=namespace, labels=mine, resource_version=start,
                                   server_timeout=10):
        seen.append((event, obj.metadata.name))
        last = obj.metadata.resourceVersion
        if event == "DELETED":
            break
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    # Resuming from the last seen version replays nothing old, only the next change.
    client.create(ConfigMap(metadata=ObjectMeta(name="w2", labels={"w": "y"})), namespace=namespace)
    resumed = client.watch(ConfigMap, namespace=namespace, labels={"w": "y"}, resource_version=last,
                           server_timeout=10)
    assert next(iter(resumed))[1].metadata.name == "w2"


def test_cluster_scoped_resources(client: Client) -> None:
    name = fresh("lk-node")
    node = client.create(Node(metadata=ObjectMeta(name=name, labels={"lk": "node"})))
    assert node.metadata.namespace is None
    assert [n.metadata.name for n in client.list(Node, labels={"lk": "node"})] == [name]
    role = client.create(ClusterRole(metadata=ObjectMeta(name=fresh("lk-role")), rules=[]))
    assert client.get(ClusterRole, role.metadata.name).rules == []
    active = [n.metadata.name for n in client.list(Namespace, fields={"status.phase": "Active"})]
    assert "default" in active and "kube-system" in active
    cordoned = client.patch(Node, name, {"spec": {"unschedulable": True}})
    assert cordoned.spec.unschedulable is True
    client.delete(Node, name)
    assert list(client.list(Node, labels={"lk": "node"})) == []


def test_status_and_scale_subresources(client: Client, namespace: str) -> None:
    name = fresh("sub")
    client.create(deployment(name), namespace=namespace)
    scale = client.get(Deployment.Scale, name, namespace=namespace)
    assert scale.spec.replicas == 1 and scale.status.selector == f"app={name}"
    patched = client.patch(Deployment.Scale, name, {"spec": {"replicas": 4}}, namespace=namespace,
                           patch_type=PatchType.MERGE)
    assert patched.spec.replicas == 4
    scale.spec.replicas = 3  # still at the version read before the patch
    with pytest.raises(ApiError) as stale:
        client.replace(scale, name, namespace=namespace)
    assert stale.value.status.code == 409
    # Without a resourceVersion the write is unconditional (the deployment controller writes status meanwhile).
    scale.metadata.resourceVersion = None
    assert client.replace(scale, name, namespace=namespace).spec.replicas == 3
    client.patch(Deployment.Scale, name, {"spec": {"replicas": 4}}, namespace=namespace, patch_type=PatchType.MERGE)
    assert client.get(Deployment, name, namespace=namespace).spec.replicas == 4
    # Status on a kind no controller writes: a ClusterIP Service.
    client.create(service("st"), namespace=namespace)
    lb = {"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.9"}]}}}
    status = client.patch(Service.Status, "st", lb, namespace=namespace, patch_type=PatchType.MERGE)
    assert status.status.loadBalancer.ingress[0].ip == "198.18.0.9"
    # Writes to the main resource ignore status; status writes ignore spec.
    client.patch(Service, "st", {"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.10"}]}}},
                 namespace=namespace, patch_type=PatchType.MERGE)
    client.patch(Service.Status, "st", {"spec": {"ports": [{"port": 81}]}}, namespace=namespace,
                 patch_type=PatchType.MERGE)
    live = client.get(Service, "st", namespace=namespace)
    assert (live.spec.ports[0].port, live.status.loadBalancer.ingress[0].ip) == (80, "198.18.0.9")


async def test_wait_for_condition_set_through_status(client: Client, namespace: str, config: KubeConfig) -> None:
    client.create(service("waited"), namespace=namespace)
    aclient = AsyncClient(config=config)
    try:
        waiter = asyncio.create_task(aclient.wait(Service, "waited", namespace=namespace,
                                                  for_conditions=["Ready"]))
        condition = {"type": "Ready", "status": "True", "reason": "Tested", "message": "ok",
                     "lastTransitionTime": "2025-01-01T00:00:00Z"}
        await aclient.patch(Service.Status, "waited", {"status": {"conditions": [condition]}},
                            namespace=namespace, patch_type=PatchType.MERGE)
        done = await asyncio.wait_for(waiter, 20)
    finally:
        await aclient.close()
    assert done.status.conditions[0].type == "Ready"


async def test_async_client(config: KubeConfig) -> None:
    client = AsyncClient(config=config, field_manager="lightkube-async")
    try:
        ns = fresh("lka")
        await client.create(Namespace(metadata=ObjectMeta(name=ns)))
        created = await client.create(ConfigMap(metadata=ObjectMeta(name="a", labels={"x": "1"})), namespace=ns)
        listed = [o.metadata.name async for o in client.list(ConfigMap, namespace=ns, labels={"x": "1"})]
        assert listed == ["a"]
        await client.patch(ConfigMap, "a", {"data": {"k": "v"}}, namespace=ns)
        applied = await client.apply(
            ConfigMap(apiVersion="v1", kind="ConfigMap", metadata=ObjectMeta(name="b", namespace=ns, labels={"x": "1"}),
                      data={"k": "1"}), field_manager="async-applier")
        assert applied.data == {"k": "1"}
        events = []
        since = created.metadata.resourceVersion
        async for event, obj in client.watch(ConfigMap, namespace=ns, labels={"x": "1"}, resource_version=since):
            events.append((event, obj.metadata.name))
            if len(events) == 2:
                break
        assert events == [("MODIFIED", "a"), ("ADDED", "b")]
        await client.delete(ConfigMap, "a", namespace=ns)
        with pytest.raises(ApiError):
            await client.get(ConfigMap, "a", namespace=ns)
    finally:
        await client.close()


def test_load_and_apply_manifests(client: Client, namespace: str) -> None:
    docs = codecs.load_all_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-yaml}\ndata: {a: '1'}\n---\n"
        + DEPLOYMENT.replace("NAME", "from-yaml")
    )
    for obj in docs:
        obj.metadata.namespace = namespace
        client.apply(obj, field_manager="manifests")
    assert client.get(ConfigMap, "from-yaml", namespace=namespace).data == {"a": "1"}
    assert client.get(Deployment, "from-yaml", namespace=namespace).spec.replicas == 1


def test_generic_resource_over_a_crd(client: Client, namespace: str, config: KubeConfig) -> None:
    Widget = create_namespaced_resource("example.com", "v1", "Widget", "widgets")
    crd = codecs.from_dict({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                   "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                               }}}}]},
    })
    client.apply(crd, field_manager="crd-installer")
    if not asyncio.run(_established(config, type(crd), "widgets.example.com")):
        pytest.skip("CustomResourceDefinitions are not served yet")
    created = client.create(Widget(metadata=ObjectMeta(name="w"), spec={"size": 3}), namespace=namespace)
    assert created.spec == {"size": 3}
    status = client.patch(Widget.Status, "w", {"status": {"ready": True}}, namespace=namespace,
                          patch_type=PatchType.MERGE)
    assert status.status == {"ready": True}
    assert [w.metadata.name for w in client.list(Widget, namespace=namespace)] == ["w"]
    load_in_cluster_generic_resources(client)
    assert get_generic_resource("example.com/v1", "Widget") is Widget
    applied = client.apply(Widget(apiVersion="example.com/v1", kind="Widget",
                                  metadata=ObjectMeta(name="w2", namespace=namespace), spec={"size": 5}),
                           field_manager="widget-applier")
    assert applied.spec == {"size": 5} and applied.metadata.managedFields[0].manager == "widget-applier"


async def _established(config: KubeConfig, crd_class: type, name: str) -> bool:
    aclient = AsyncClient(config=config)
    try:
        await asyncio.wait_for(aclient.wait(crd_class, name, for_conditions=["Established"]), 10)
        return True
    except (asyncio.TimeoutError, ApiError):
        return False
    finally:
        await aclient.close()


async def test_watch_reconnects_from_last_version(config: KubeConfig) -> None:
    """lightkube reopens a watch the server closed (timeoutSeconds) from the last version it saw."""
    client = AsyncClient(config=config)
    try:
        ns = fresh("lkw")
        await client.create(Namespace(metadata=ObjectMeta(name=ns)))
        mine = {"w": "reconnect"}
        await client.create(ConfigMap(metadata=ObjectMeta(name="first", labels=mine)), namespace=ns)
        seen: list[tuple[str, str]] = []
        stream = client.watch(ConfigMap, namespace=ns, labels=mine, server_timeout=1)
        async for event, obj in stream:
            seen.append((event, obj.metadata.name))
            if len(seen) == 1:
                await asyncio.sleep(1.5)  # outlive the server-side timeout so the stream is reopened
                await client.create(ConfigMap(metadata=ObjectMeta(name="second", labels=mine)), namespace=ns)
            else:
                break
        assert seen == [("ADDED", "first"), ("ADDED", "second")]
    finally:
        await client.close()


def test_server_logged_no_errors(cluster: Cluster) -> None:
    """Runs last in this module: no request above hit a server bug (answered 500)."""
    failures = [line for line in cluster.output if "internal error serving" in line or "Error handling request" in line]
    assert failures == []

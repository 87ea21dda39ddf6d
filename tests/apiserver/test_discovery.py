"""Discovery, version, health, metrics and OpenAPI endpoints; the resource table."""

from __future__ import annotations

from sampan.apiserver.resources import ResourceInfo, default_table
from tests.apiserver.conftest import call, configmap

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBECTL_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


async def test_version_with_and_without_slash(client) -> None:
    for path in ("/version", "/version/"):
        code, v = await call(client, "GET", path)
        assert code == 200 and v["major"] == "1" and v["minor"] == "32" and v["gitVersion"].startswith("v1.32")


async def test_legacy_discovery(client) -> None:
    code, api = await call(client, "GET", "/api/")
    assert code == 200 and api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    code, apis = await call(client, "GET", "/apis")
    names = [g["name"] for g in apis["groups"]]
    assert apis["kind"] == "APIGroupList" and "apps" in names and "apiextensions.k8s.io" in names
    code, core = await call(client, "GET", "/api/v1/")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["pods"]["categories"] == ["all"]
    assert by_name["pods"]["verbs"] == [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    assert by_name["pods/eviction"] == {
        "name": "pods/eviction",
        "singularName": "",
        "namespaced": True,
        "group": "policy",
        "version": "v1",
        "kind": "Eviction",
        "verbs": ["create"],
    }
    assert by_name["pods/status"]["kind"] == "Pod" and by_name["namespaces"]["namespaced"] is False
    code, apps = await call(client, "GET", "/apis/apps/v1")
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    code, group = await call(client, "GET", "/apis/apps")
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["groupVersion"] == "apps/v1"
    assert (await call(client, "GET", "/apis/nope/v1"))[0] == 404


async def test_aggregated_discovery_content_type(client) -> None:
    for path in ("/api", "/apis"):
        resp = await client.get(path, headers={"Accept": KUBECTL_ACCEPT})
        assert resp.status == 200 and resp.headers["Content-Type"] == AGGREGATED
        doc = await resp.json()
        assert doc["kind"] == "APIGroupDiscoveryList" and doc["items"]
    resp = await client.get("/apis", headers={"Accept": KUBECTL_ACCEPT})
    apps = next(i for i in (await resp.json())["items"] if i["metadata"].get("name") == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and deploy["shortNames"] == ["deploy"]
    assert {
        "subresource": "scale",
        "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "verbs": ["get", "patch", "update"],
    } in deploy["subresources"]
    resp = await client.get("/apis", headers={"Accept": "application/json"})
    assert resp.headers["Content-Type"].startswith("application/json") and (await resp.json())["kind"] == "APIGroupList"


async def test_health_and_metrics(client) -> None:
    for path in ("/healthz", "/livez", "/readyz", "/readyz/ping"):
        resp = await client.get(path)
        assert resp.status == 200 and await resp.text() == "ok"
    resp = await client.get("/readyz?verbose")
    assert "readyz check passed" in await resp.text()
    await call(client, "GET", "/api/v1/namespaces/default/configmaps")
    await call(client, "POST", "/api/v1/namespaces/default/configmaps", configmap("m"))
    text = await (await client.get("/metrics")).text()
    assert (
        'apiserver_request_total{verb="LIST",group="",version="v1",resource="configmaps",subresource="",code="200"} 1'
        in text
    )
    assert 'verb="POST"' in text and "apiserver_request_duration_seconds_bucket" in text


async def test_openapi_v3(client) -> None:
    code, root = await call(client, "GET", "/openapi/v3")
    assert code == 200 and "api/v1" in root["paths"] and "apis/apps/v1" in root["paths"]
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    code, doc = await call(client, "GET", url)
    assert code == 200 and doc["openapi"].startswith("3.")
    assert (await call(client, "GET", "/openapi/v3/apis/nope/v1"))[0] == 404


async def test_unknown_paths_are_status_404(client) -> None:
    for path in ("/nothing", "/api/v2", "/apis/apps/v9/deployments", "/api/v1/namespaces/default/pods/a/b/c/d"):
        code, st = await call(client, "GET", path)
        assert code == 404 and st["kind"] == "Status", path


def test_resource_table_is_mutable() -> None:
    table = default_table()
    before = table.generation
    info = ResourceInfo(
        "example.com", "v1", "widgets", "widget", "Widget", True, custom=True, storage_group="example.com"
    )
    table.add(info)
    assert table.get("example.com", "v1", "widgets") is info and table.generation > before
    assert ("example.com", ["v1"]) in table.groups()
    assert info.key("ns", "w") == "/registry/example.com/widgets/ns/w"
    table.remove("example.com", "v1", "widgets")
    assert table.get("example.com", "v1", "widgets") is None


def test_builtin_storage_keys_and_schemas() -> None:
    table = default_table()
    pods = table.get("", "v1", "pods")
    assert pods is not None and pods.key("default", "p") == "/registry/core/pods/default/p"
    assert pods.schema is not None
    nodes = table.get("", "v1", "nodes")
    assert nodes is not None and nodes.key("", "n1") == "/registry/core/nodes/n1"


async def test_custom_resource_served_after_table_change(client, registry) -> None:
    info = ResourceInfo("example.com", "v1", "widgets", "widget", "Widget", True, custom=True)
    registry.table.add(info)
    code, obj = await call(
        client,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": 1}},
    )
    assert code == 201 and obj["metadata"]["generation"] == 1
    code, doc = await call(client, "GET", "/apis/example.com/v1")
    assert doc["resources"][0]["name"] == "widgets"
    code, st = await call(
        client,
        "PATCH",
        "/apis/example.com/v1/namespaces/default/widgets/w",
        {},
        "application/strategic-merge-patch+json",
    )
    assert code == 415
    registry.table.remove("example.com", "v1", "widgets")
    assert (await call(client, "GET", "/apis/example.com/v1/namespaces/default/widgets"))[0] == 404


WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "size": {"type": "integer", "minimum": 1, "default": 3},
                "color": {"type": "string"},
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}}},
    },
}


async def test_custom_resource_schema_status_scale_and_selectors(client, registry) -> None:
    from sampan.apiserver.resources import SCALE, status

    info = ResourceInfo(
        "example.com",
        "v1",
        "gadgets",
        "gadget",
        "Gadget",
        True,
        custom=True,
        schema=WIDGET_SCHEMA,
        subresources={"status": status("Gadget"), "scale": SCALE},
        selectable_fields=("spec.color",),
        scale_paths=(".spec.size", ".status.replicas", ".status.selector"),
    )
    registry.table.add(info)
    base = "/apis/example.com/v1/namespaces/default/gadgets"
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "spec": {"color": "red", "extra": 1},
        "status": {"replicas": 9},
    }
    code, st = await call(client, "POST", f"{base}?fieldValidation=Strict", body)
    assert code == 400 and 'unknown field "spec.extra"' in st["message"]
    code, obj = await call(client, "POST", base, body)
    assert code == 201 and obj["spec"] == {"color": "red", "size": 3} and "status" not in obj
    bad = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "h"}, "spec": {"size": 0}}
    code, st = await call(client, "POST", base, bad)
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec.size"
    code, obj = await call(
        client,
        "PATCH",
        f"{base}/g/status",
        {"status": {"replicas": 2, "selector": "app=g"}},
        "application/merge-patch+json",
    )
    assert code == 200 and obj["status"]["replicas"] == 2
    code, scale = await call(client, "GET", f"{base}/g/scale")
    assert scale["spec"]["replicas"] == 3 and scale["status"] == {"replicas": 2, "selector": "app=g"}
    await call(client, "PATCH", f"{base}/g/scale", {"spec": {"replicas": 5}}, "application/merge-patch+json")
    _, obj = await call(client, "GET", f"{base}/g")
    assert obj["spec"]["size"] == 5 and obj["metadata"]["generation"] == 2
    _, lst = await call(client, "GET", f"{base}?fieldSelector=spec.color%3Dred")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["g"]
    code, _ = await call(client, "GET", f"{base}?fieldSelector=spec.size%3D3")
    assert code == 400

"""CRUD, errors and subresources through the HTTP handlers."""

from __future__ import annotations

import json

from tests.apiserver.conftest import call, configmap, deployment

DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
CMS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"


def pod(name: str, node: str = "") -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def test_create_get_metadata(client) -> None:
    code, obj = await call(client, "POST", DEPLOYS, deployment())
    assert code == 201
    m = obj["metadata"]
    assert obj["kind"] == "Deployment" and obj["apiVersion"] == "apps/v1"
    assert m["namespace"] == "default" and m["generation"] == 1 and len(m["uid"]) == 36
    assert m["creationTimestamp"].endswith("Z") and len(m["creationTimestamp"]) == 20
    assert int(m["resourceVersion"]) > 0
    assert "status" not in obj or obj["status"] == {}
    code, got = await call(client, "GET", f"{DEPLOYS}/web")
    assert code == 200 and got["metadata"]["uid"] == m["uid"]


async def test_create_without_content_type_kind_or_api_version(client) -> None:
    body = json.dumps({"metadata": {"name": "raw"}, "data": {"k": "v"}})
    resp = await client.post(CMS, data=body, headers={"Content-Type": ""})
    assert resp.status == 201
    obj = await resp.json()
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"


async def test_create_yaml_body(client) -> None:
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  a: b\n"
    code, obj = await call(client, "POST", CMS, body, "application/yaml")
    assert code == 201 and obj["data"] == {"a": "b"}


async def test_error_shapes(client) -> None:
    code, st = await call(client, "GET", f"{DEPLOYS}/missing")
    assert code == 404
    assert st == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
    await call(client, "POST", CMS, configmap("dup"))
    code, st = await call(client, "POST", CMS, configmap("dup"))
    assert (code, st["reason"], st["message"]) == (409, "AlreadyExists", 'configmaps "dup" already exists')
    code, st = await call(client, "GET", "/api/v1/nothings")
    assert (code, st["message"]) == (404, "the server could not find the requested resource")
    code, st = await call(client, "POST", CMS, b"{not json")
    assert code == 400 and st["reason"] == "BadRequest"
    code, st = await call(client, "POST", CMS, configmap("x"), "text/plain")
    assert code == 415 and st["reason"] == "UnsupportedMediaType"
    code, st = await call(client, "POST", CMS, b"{" + b" " * (3 * 1024 * 1024 + 10) + b"}")
    assert code == 413 and st["reason"] == "RequestEntityTooLarge"


async def test_url_body_mismatches(client) -> None:
    wrong_ns = configmap("a")
    wrong_ns["metadata"]["namespace"] = "kube-system"
    code, st = await call(client, "POST", CMS, wrong_ns)
    assert code == 400 and "does not match the namespace" in st["message"]
    wrong_version = configmap("b")
    wrong_version["apiVersion"] = "apps/v1"
    code, st = await call(client, "POST", CMS, wrong_version)
    assert code == 400 and "the API version in the data (apps/v1)" in st["message"]
    wrong_kind = configmap("c")
    wrong_kind["kind"] = "Secret"
    code, st = await call(client, "POST", CMS, wrong_kind)
    assert code == 400
    await call(client, "POST", CMS, configmap("d"))
    code, st = await call(client, "PUT", f"{CMS}/other", configmap("d"))
    assert code == 400 and "does not match the name on the URL" in st["message"]


async def test_namespace_must_exist(client) -> None:
    code, st = await call(client, "POST", "/api/v1/namespaces/nope/configmaps", configmap("a"))
    assert (code, st["message"]) == (404, 'namespaces "nope" not found')


async def test_generate_name(client) -> None:
    body = {"metadata": {"generateName": "web-"}, "data": {}}
    code, obj = await call(client, "POST", CMS, body)
    assert code == 201 and obj["metadata"]["name"].startswith("web-") and len(obj["metadata"]["name"]) == 9


async def test_invalid_name_is_422(client) -> None:
    code, st = await call(client, "POST", CMS, configmap("Bad_Name"))
    assert code == 422 and st["reason"] == "Invalid"
    assert st["details"]["kind"] == "ConfigMap" and st["details"]["causes"][0]["field"] == "metadata.name"


async def test_update_conflict_and_generation(client) -> None:
    _, created = await call(client, "POST", DEPLOYS, deployment())
    stale = created["metadata"]["resourceVersion"]
    created["spec"]["replicas"] = 3
    code, updated = await call(client, "PUT", f"{DEPLOYS}/web", created)
    assert code == 200 and updated["metadata"]["generation"] == 2
    created["spec"]["replicas"] = 4
    code, st = await call(client, "PUT", f"{DEPLOYS}/web", created)
    assert code == 409 and st["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert stale != updated["metadata"]["resourceVersion"]
    del created["metadata"]["resourceVersion"]
    code, updated = await call(client, "PUT", f"{DEPLOYS}/web", created)
    assert code == 200 and updated["spec"]["replicas"] == 4
    # Metadata-only changes leave the generation alone.
    updated["metadata"]["labels"]["x"] = "y"
    code, again = await call(client, "PUT", f"{DEPLOYS}/web", updated)
    assert again["metadata"]["generation"] == updated["metadata"]["generation"]


async def test_status_subresource_separation(client) -> None:
    _, obj = await call(client, "POST", DEPLOYS, deployment())
    obj["status"] = {"replicas": 7}
    _, updated = await call(client, "PUT", f"{DEPLOYS}/web", obj)
    assert "replicas" not in (updated.get("status") or {})
    updated["status"] = {"replicas": 5}
    updated["spec"]["replicas"] = 9
    code, st = await call(client, "PUT", f"{DEPLOYS}/web/status", updated)
    assert code == 200 and st["status"]["replicas"] == 5 and st["spec"]["replicas"] == 1
    code, patched = await call(
        client, "PATCH", f"{DEPLOYS}/web/status", {"status": {"readyReplicas": 1}}, "application/merge-patch+json"
    )
    assert code == 200 and patched["status"] == {"replicas": 5, "readyReplicas": 1}


async def test_patch_types(client) -> None:
    await call(client, "POST", CMS, configmap("p"))
    code, obj = await call(client, "PATCH", f"{CMS}/p", {"data": {"b": "2"}}, "application/merge-patch+json")
    assert code == 200 and obj["data"] == {"a": "1", "b": "2"}
    code, obj = await call(
        client, "PATCH", f"{CMS}/p", [{"op": "remove", "path": "/data/a"}], "application/json-patch+json"
    )
    assert code == 200 and obj["data"] == {"b": "2"}
    code, st = await call(
        client, "PATCH", f"{CMS}/p", [{"op": "test", "path": "/data/b", "value": "9"}], "application/json-patch+json"
    )
    assert code == 422 and st["reason"] == "Invalid"
    code, obj = await call(client, "PATCH", f"{CMS}/p", {"data": {"c": "3"}}, "application/strategic-merge-patch+json")
    assert code == 200 and obj["data"] == {"b": "2", "c": "3"}
    stale = {"metadata": {"resourceVersion": "1"}, "data": {"d": "4"}}
    code, st = await call(client, "PATCH", f"{CMS}/p", stale, "application/merge-patch+json")
    assert code == 409
    code, st = await call(client, "PATCH", f"{CMS}/p", {}, "application/json")
    assert code == 415
    code, st = await call(client, "PATCH", f"{CMS}/missing", {}, "application/merge-patch+json")
    assert code == 404


async def test_server_side_apply_creates_and_requires_manager(client) -> None:
    body = configmap("ssa")
    code, st = await call(client, "PATCH", f"{CMS}/ssa", body, "application/apply-patch+yaml")
    assert code == 422 and "fieldManager" in st["message"]
    code, obj = await call(client, "PATCH", f"{CMS}/ssa?fieldManager=me", body, "application/apply-patch+yaml")
    assert code == 201 and obj["metadata"]["managedFields"][0]["manager"] == "me"
    code, obj = await call(client, "PATCH", f"{CMS}/ssa?fieldManager=me", body, "application/apply-patch+yaml")
    assert code == 200


async def test_dry_run_does_not_persist(client) -> None:
    code, obj = await call(client, "POST", f"{CMS}?dryRun=All", configmap("dry"))
    assert code == 201 and obj["metadata"]["name"] == "dry"
    assert (await call(client, "GET", f"{CMS}/dry"))[0] == 404
    await call(client, "POST", CMS, configmap("dry"))
    code, obj = await call(
        client, "PATCH", f"{CMS}/dry?dryRun=All", {"data": {"z": "1"}}, "application/merge-patch+json"
    )
    assert code == 200 and obj["data"]["z"] == "1" and obj["metadata"]["resourceVersion"]
    code, _ = await call(client, "DELETE", f"{CMS}/dry", {"dryRun": ["All"]})
    assert code == 200
    _, live = await call(client, "GET", f"{CMS}/dry")
    assert "z" not in live["data"]


async def test_delete_returns_status_and_honours_preconditions(client) -> None:
    _, obj = await call(client, "POST", CMS, configmap("d"))
    code, st = await call(client, "DELETE", f"{CMS}/d", {"preconditions": {"uid": "nope"}})
    assert code == 409 and "Precondition failed: UID in precondition: nope" in st["message"]
    code, st = await call(client, "DELETE", f"{CMS}/d")
    assert code == 200 and st["status"] == "Success"
    assert st["details"] == {"name": "d", "kind": "configmaps", "uid": obj["metadata"]["uid"]}


async def test_finalizers_keep_object_until_removed(client) -> None:
    body = configmap("f")
    body["metadata"]["finalizers"] = ["example.com/x"]
    await call(client, "POST", CMS, body)
    code, obj = await call(client, "DELETE", f"{CMS}/f")
    assert code == 200 and obj["kind"] == "ConfigMap" and obj["metadata"]["deletionTimestamp"]
    code, st = await call(
        client,
        "PATCH",
        f"{CMS}/f",
        {"metadata": {"finalizers": ["example.com/x", "new"]}},
        "application/merge-patch+json",
    )
    assert code == 422
    code, obj = await call(
        client, "PATCH", f"{CMS}/f", {"metadata": {"finalizers": None}}, "application/merge-patch+json"
    )
    assert code == 200
    assert (await call(client, "GET", f"{CMS}/f"))[0] == 404


async def test_propagation_policy_finalizers(client) -> None:
    await call(client, "POST", CMS, configmap("o"))
    code, obj = await call(client, "DELETE", f"{CMS}/o", {"propagationPolicy": "Orphan"})
    assert code == 200 and obj["metadata"]["finalizers"] == ["orphan"]
    await call(client, "POST", CMS, configmap("fg"))
    code, obj = await call(client, "DELETE", f"{CMS}/fg?propagationPolicy=Foreground")
    assert obj["metadata"]["finalizers"] == ["foregroundDeletion"]


async def test_pod_graceful_deletion_and_binding(client) -> None:
    code, created = await call(client, "POST", PODS, pod("p"))
    assert created["status"]["phase"] == "Pending"
    code, st = await call(client, "POST", f"{PODS}/p/binding", {"target": {"kind": "Node", "name": "n1"}})
    assert code == 201 and st["status"] == "Success"
    code, st = await call(client, "POST", f"{PODS}/p/binding", {"target": {"kind": "Node", "name": "n2"}})
    assert code == 409
    _, bound = await call(client, "GET", f"{PODS}/p")
    assert bound["spec"]["nodeName"] == "n1"
    code, obj = await call(client, "DELETE", f"{PODS}/p")
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 30 and obj["metadata"]["deletionTimestamp"]
    code, st = await call(client, "DELETE", f"{PODS}/p?gracePeriodSeconds=0")
    assert code == 200 and st["kind"] == "Status"
    # An unscheduled pod goes at once.
    await call(client, "POST", PODS, pod("q"))
    code, st = await call(client, "DELETE", f"{PODS}/q")
    assert st["kind"] == "Status"


async def test_scale_subresource(client) -> None:
    await call(client, "POST", DEPLOYS, deployment())
    code, scale = await call(client, "GET", f"{DEPLOYS}/web/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 1 and scale["status"]["selector"] == "app=web"
    code, scale = await call(
        client, "PATCH", f"{DEPLOYS}/web/scale", {"spec": {"replicas": 3}}, "application/merge-patch+json"
    )
    assert code == 200 and scale["spec"]["replicas"] == 3
    scale["spec"]["replicas"] = -1
    code, st = await call(client, "PUT", f"{DEPLOYS}/web/scale", scale)
    assert code == 422
    _, dep = await call(client, "GET", f"{DEPLOYS}/web")
    assert dep["spec"]["replicas"] == 3 and dep["metadata"]["generation"] == 2


async def test_namespace_lifecycle(client) -> None:
    code, ns = await call(client, "POST", "/api/v1/namespaces", {"metadata": {"name": "team"}})
    assert code == 201 and ns["spec"]["finalizers"] == ["kubernetes"] and ns["status"]["phase"] == "Active"
    code, ns = await call(client, "DELETE", "/api/v1/namespaces/team")
    assert code == 200 and ns["status"]["phase"] == "Terminating"
    code, st = await call(client, "POST", "/api/v1/namespaces/team/configmaps", configmap("x"))
    assert code == 403 and st["message"] == (
        'configmaps "x" is forbidden: unable to create new content in namespace team because it is being terminated'
    )
    ns["spec"]["finalizers"] = []
    code, _ = await call(client, "PUT", "/api/v1/namespaces/team/finalize", ns)
    assert code == 200
    assert (await call(client, "GET", "/api/v1/namespaces/team"))[0] == 404


async def test_list_selectors_and_pagination(client) -> None:
    for i in range(7):
        await call(client, "POST", CMS, configmap(f"c{i}", tier="a" if i % 2 else "b"))
    code, lst = await call(client, "GET", CMS)
    assert code == 200 and lst["kind"] == "ConfigMapList" and len(lst["items"]) == 7
    _, lst = await call(client, "GET", f"{CMS}?labelSelector=tier%3Da")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["c1", "c3", "c5"]
    _, lst = await call(client, "GET", f"{CMS}?fieldSelector=metadata.name%3Dc2")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["c2"]
    code, st = await call(client, "GET", f"{CMS}?fieldSelector=spec.foo%3Dx")
    assert code == 400 and "spec.foo" in st["message"]
    code, st = await call(client, "GET", f"{CMS}?labelSelector=%3D%3D%3D")
    assert code == 400
    names, token = [], ""
    while True:
        _, page = await call(client, "GET", f"{CMS}?limit=3&continue={token}")
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] > 0
    assert names == [f"c{i}" for i in range(7)]
    _, page = await call(client, "GET", f"{CMS}?limit=2&labelSelector=tier%3Db")
    assert [i["metadata"]["name"] for i in page["items"]] == ["c0", "c2"]
    _, rest = await call(client, "GET", f"{CMS}?limit=2&labelSelector=tier%3Db&continue={page['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c4", "c6"]
    code, st = await call(client, "GET", f"{CMS}?continue=garbage")
    assert code == 400
    _, all_ns = await call(client, "GET", "/api/v1/configmaps")
    assert len(all_ns["items"]) == 7


async def test_delete_collection(client) -> None:
    for i in range(3):
        await call(client, "POST", CMS, configmap(f"x{i}", app="z" if i else "keep"))
    code, deleted = await call(client, "DELETE", f"{CMS}?labelSelector=app%3Dz")
    assert code == 200 and len(deleted["items"]) == 2
    _, lst = await call(client, "GET", CMS)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["x0"]


async def test_table_and_partial_metadata(client) -> None:
    await call(client, "POST", DEPLOYS, deployment())
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, table = await call(client, "GET", DEPLOYS, Accept=accept)
    assert code == 200 and table["kind"] == "Table" and table["metadata"]["resourceVersion"]
    assert table["columnDefinitions"][0]["name"] == "Name" and table["rows"][0]["cells"][0] == "web"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    code, one = await call(client, "GET", f"{DEPLOYS}/web", Accept=accept)
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    code, st = await call(client, "GET", f"{DEPLOYS}?includeObject=Bogus", Accept=accept)
    assert code == 400
    code, pm = await call(
        client, "GET", DEPLOYS, Accept="application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    )
    assert pm["kind"] == "PartialObjectMetadataList" and pm["items"][0]["metadata"]["name"] == "web"
    code, st = await call(client, "GET", DEPLOYS, Accept="text/html")
    assert code == 406


async def test_method_not_allowed(client) -> None:
    code, st = await call(client, "POST", f"{CMS}/x", configmap("x"))
    assert code == 405 and st["reason"] == "MethodNotAllowed"
    code, st = await call(client, "DELETE", "/api/v1/namespaces")
    assert code == 405


async def test_reviews(client) -> None:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "create", "resource": "pods"}},
    }
    code, review = await call(client, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body)
    assert code == 201 and review["status"]["allowed"] is True
    code, who = await call(client, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {})
    assert code == 201 and "userInfo" in who["status"]


async def test_pod_streams_need_a_node_and_a_backend(client) -> None:
    await call(client, "POST", PODS, pod("s"))
    code, st = await call(client, "GET", f"{PODS}/s/exec?command=ls&stdout=true")
    assert code == 400 and st["message"] == "pod s does not have a host assigned"
    await call(client, "POST", PODS, pod("t", node="n1"))
    code, st = await call(client, "GET", f"{PODS}/t/log")
    assert code == 503 and st["reason"] == "ServiceUnavailable"


async def test_exec_goes_to_the_stream_backend(registry) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from sampan.apiserver.app import build_app
    from sampan.apiserver.streaming import LocalProcessBackend

    app = build_app(registry, stream_backend=LocalProcessBackend())
    async with TestClient(TestServer(app)) as c:
        await call(c, "POST", PODS, pod("e", node="n1"))
        ws = await c.ws_connect(f"{PODS}/e/exec?command=echo&command=hi&stdout=true", protocols=("v4.channel.k8s.io",))
        received = b""
        async for msg in ws:
            if isinstance(msg.data, bytes) and msg.data[:1] == b"\x01":
                received += msg.data[1:]
        assert received == b"hi\n"


async def test_eviction_respects_disruption_budgets(client) -> None:
    await call(client, "POST", PODS, pod("ev", node="n1"))
    await call(client, "PATCH", f"{PODS}/ev", {"metadata": {"labels": {"app": "db"}}}, "application/merge-patch+json")
    # Pending pods are always evictable (upstream): make it a running one the budget protects.
    running = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    await call(client, "PATCH", f"{PODS}/ev/status", running, "application/merge-patch+json")
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }
    await call(client, "POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev"}}
    code, st = await call(client, "POST", f"{PODS}/ev/eviction", eviction)
    assert (
        code == 429 and st["reason"] == "TooManyRequests" and st["details"]["causes"][0]["reason"] == "DisruptionBudget"
    )
    await call(client, "DELETE", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/db")
    eviction["deleteOptions"] = {"gracePeriodSeconds": 0}
    code, st = await call(client, "POST", f"{PODS}/ev/eviction", eviction)
    assert code == 201 and st["status"] == "Success"
    assert (await call(client, "GET", f"{PODS}/ev"))[0] == 404


BAD_INPUTS = [
    ("POST", CMS, {"metadata": {"name": 5}}, "application/json"),
    ("POST", CMS, {"metadata": {"generateName": 7}}, "application/json"),
    ("POST", CMS, {"apiVersion": 3, "metadata": {"name": "c"}}, "application/json"),
    ("POST", CMS, {"kind": ["x"], "metadata": {"name": "c"}}, "application/json"),
    ("POST", CMS, {"metadata": {"name": "b"}, "data": {"a": 1}}, "application/json"),
    ("POST", CMS, "a: [", "application/yaml"),
    ("POST", CMS, b"\x00\x01garbage", "application/vnd.kubernetes.protobuf"),
    ("POST", DEPLOYS, {"metadata": {"name": "d"}, "spec": "x"}, "application/json"),
    ("PATCH", f"{CMS}/ok", [1, 2], "application/merge-patch+json"),
    ("PATCH", f"{CMS}/ok", [{"op": "bogus"}], "application/json-patch+json"),
    ("PATCH", f"{CMS}/ok", {"data": {"a": 1}}, "application/merge-patch+json"),
    ("PATCH", f"{CMS}/ok?fieldManager=m", "[1]", "application/apply-patch+yaml"),
    ("DELETE", f"{CMS}/ok", "garbage", "application/json"),
    ("DELETE", f"{CMS}/ok", {"propagationPolicy": "Sideways"}, "application/json"),
    ("GET", f"{CMS}?limit=abc", None, ""),
    ("GET", f"{CMS}?resourceVersion=abc", None, ""),
    ("GET", f"{CMS}?watch=true&timeoutSeconds=abc", None, ""),
    ("PUT", "/api/v1/namespaces/default/finalize", {"spec": {"finalizers": "x"}}, "application/json"),
]


async def test_client_mistakes_are_4xx_status(client) -> None:
    await call(client, "POST", CMS, configmap("ok"))
    for method, path, body, ctype in BAD_INPUTS:
        code, st = (
            await call(client, method, path, body, ctype) if body is not None else await call(client, method, path)
        )
        assert 400 <= code < 500, (method, path, body, code, st)
        assert st["kind"] == "Status" and st["status"] == "Failure" and st["code"] == code


async def test_unknown_fields_strict_warn_ignore(client) -> None:
    body = configmap("u")
    body["bogus"] = 1
    body["metadata"]["alsoBogus"] = "x"
    code, st = await call(client, "POST", f"{CMS}?fieldValidation=Strict", body)
    assert code == 400 and 'unknown field "bogus"' in st["message"]
    resp = await client.post(f"{CMS}?fieldValidation=Warn", json=body)
    assert resp.status == 201 and 'unknown field \\"bogus\\"' in resp.headers.get("Warning", "")
    stored = await resp.json()
    assert "bogus" not in stored and "alsoBogus" not in stored["metadata"]
    body["metadata"]["name"] = "v"
    code, obj = await call(client, "POST", f"{CMS}?fieldValidation=Ignore", body)
    assert code == 201 and "bogus" not in obj
    dep = deployment("keep")
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    code, obj = await call(client, "POST", DEPLOYS, dep)
    assert obj["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}}

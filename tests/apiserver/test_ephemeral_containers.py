"""The pods/ephemeralcontainers subresource (what ``kubectl debug`` writes): ephemeral
containers are only added through it, never at create, never through the pod itself, and
never changed or removed once there."""

from __future__ import annotations

import pytest

from sampan.api.errors import APIError
from sampan.apiserver.streaming.backend import pick_container
from tests.apiserver.conftest import call

PODS = "/api/v1/namespaces/default/pods"
SMP = "application/strategic-merge-patch+json"


def pod(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


def debugger(name: str = "dbg", **extra: object) -> dict:
    return {"name": name, "image": "busybox", "command": ["sh"], "stdin": True, "tty": True, **extra}


def causes(status: dict) -> list[tuple[str, str, str]]:
    return [(c["reason"], c["field"], c["message"]) for c in status["details"]["causes"]]


async def test_added_through_the_subresource_like_kubectl_debug(client) -> None:
    code, _ = await call(client, "POST", PODS, pod("web"))
    assert code == 201
    patch = {"spec": {"ephemeralContainers": [debugger(targetContainerName="app")]}}
    code, obj = await call(client, "PATCH", f"{PODS}/web/ephemeralcontainers", patch, SMP)
    assert code == 200, obj
    assert obj["kind"] == "Pod"
    [added] = obj["spec"]["ephemeralContainers"]
    assert added["name"] == "dbg" and added["targetContainerName"] == "app"
    assert added["terminationMessagePolicy"] == "File"  # defaulted like any container
    code, got = await call(client, "GET", f"{PODS}/web/ephemeralcontainers")
    assert code == 200 and [c["name"] for c in got["spec"]["ephemeralContainers"]] == ["dbg"]
    # A second one is merged by name next to the first (kubectl sends the order it wants).
    order = [{"name": "dbg"}, {"name": "dbg2"}]
    code, obj = await call(client, "PATCH", f"{PODS}/web/ephemeralcontainers",
                           {"spec": {"$setElementOrder/ephemeralContainers": order,
                                     "ephemeralContainers": [debugger("dbg2")]}}, SMP)
    assert code == 200 and [c["name"] for c in obj["spec"]["ephemeralContainers"]] == ["dbg", "dbg2"]
    # Only that part is written: other spec changes and status in the body are ignored.
    obj["spec"]["containers"][0]["image"] = "nginx"
    obj["status"] = {"phase": "Succeeded"}
    obj["spec"]["ephemeralContainers"].append(debugger("dbg3"))
    code, put = await call(client, "PUT", f"{PODS}/web/ephemeralcontainers", obj)
    assert code == 200, put
    assert put["spec"]["containers"][0]["image"] == "busybox" and put["status"]["phase"] == "Pending"
    assert len(put["spec"]["ephemeralContainers"]) == 3
    managers = {(m["manager"], m.get("subresource", "")) for m in put["metadata"]["managedFields"]}
    assert any(sub == "ephemeralcontainers" for _, sub in managers)


async def test_existing_ones_cannot_change_or_go(client) -> None:
    await call(client, "POST", PODS, pod("fixed"))
    await call(client, "PATCH", f"{PODS}/fixed/ephemeralcontainers",
               {"spec": {"ephemeralContainers": [debugger()]}}, SMP)
    code, live = await call(client, "GET", f"{PODS}/fixed")
    changed = {**live, "spec": {**live["spec"], "ephemeralContainers": [{**debugger(), "image": "other"}]}}
    code, st = await call(client, "PUT", f"{PODS}/fixed/ephemeralcontainers", changed)
    assert code == 422 and st["reason"] == "Invalid"
    assert causes(st) == [("FieldValueForbidden", "spec.ephemeralContainers[0]",
                           'Forbidden: existing ephemeral containers "dbg" may not be changed')]
    removed = {**live, "spec": {**live["spec"], "ephemeralContainers": []}}
    code, st = await call(client, "PUT", f"{PODS}/fixed/ephemeralcontainers", removed)
    assert code == 422 and "may not be removed" in st["message"]
    code, after = await call(client, "GET", f"{PODS}/fixed")
    assert after["spec"]["ephemeralContainers"] == live["spec"]["ephemeralContainers"]
    assert after["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]  # nothing written


async def test_rules_of_an_ephemeral_container(client) -> None:
    await call(client, "POST", PODS, pod("rules", initContainers=[{"name": "setup", "image": "busybox"}]))
    bad = debugger("app", ports=[{"containerPort": 80}], resources={"limits": {"cpu": "1"}},
                   readinessProbe={"exec": {"command": ["true"]}}, targetContainerName="nope")
    code, st = await call(client, "PATCH", f"{PODS}/rules/ephemeralcontainers",
                          {"spec": {"ephemeralContainers": [bad]}}, SMP)
    assert code == 422
    found = {(reason, path) for reason, path, _ in causes(st)}
    assert {("FieldValueDuplicate", "spec.ephemeralContainers[0].name"),
            ("FieldValueForbidden", "spec.ephemeralContainers[0].ports"),
            ("FieldValueForbidden", "spec.ephemeralContainers[0].resources"),
            ("FieldValueForbidden", "spec.ephemeralContainers[0].readinessProbe"),
            ("FieldValueNotFound", "spec.ephemeralContainers[0].targetContainerName")} <= found
    # An init container is a valid target.
    code, _ = await call(client, "PATCH", f"{PODS}/rules/ephemeralcontainers",
                         {"spec": {"ephemeralContainers": [debugger(targetContainerName="setup")]}}, SMP)
    assert code == 200


async def test_not_at_create_nor_through_the_pod(client) -> None:
    code, st = await call(client, "POST", PODS, pod("early", ephemeralContainers=[debugger()]))
    assert code == 422
    assert causes(st) == [("FieldValueForbidden", "spec.ephemeralContainers",
                           "Forbidden: cannot be set on create")]
    await call(client, "POST", PODS, pod("plain"))
    code, obj = await call(client, "PATCH", f"{PODS}/plain",
                           {"spec": {"ephemeralContainers": [debugger()]}}, SMP)
    assert code == 200 and "ephemeralContainers" not in obj["spec"]  # the pod itself leaves them alone
    template = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                               "ephemeralContainers": [debugger()]}}}}
    code, st = await call(client, "POST", "/apis/apps/v1/namespaces/default/deployments", template)
    assert code == 422 and ("FieldValueForbidden", "spec.template.spec.ephemeralContainers",
                            "Forbidden: ephemeral containers not allowed in pod template") in causes(st)


def test_streams_pick_containers_of_every_kind() -> None:
    p = {"metadata": {"name": "p"},
         "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "setup"}],
                  "ephemeralContainers": [{"name": "dbg"}]}}
    assert pick_container(p, "") == "app"  # a debugger does not make the choice ambiguous
    assert [pick_container(p, n) for n in ("app", "setup", "dbg")] == ["app", "setup", "dbg"]
    with pytest.raises(APIError, match="container nope is not valid for pod p"):
        pick_container(p, "nope")
    p["spec"]["containers"].append({"name": "side"})
    with pytest.raises(APIError) as exc:
        pick_container(p, "")
    assert exc.value.status["message"] == (
        "a container name must be specified for pod p, choose one of: [app side] or one of the init containers: "
        "[setup] or one of the ephemeral containers: [dbg]")

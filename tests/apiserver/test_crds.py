"""The CRD loop (sampan.apiserver.crds): names, ResourceInfos, status, deletion, and
CRD validation, over a real registry on the memory store."""

from __future__ import annotations

import copy
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from sampan.api import errors
from sampan.apiserver import crds, discovery
from sampan.apiserver.resources import default_table
from sampan.client.interface import ResourceRef
from sampan.apiserver.negotiation import DISCOVERY_V2
from sampan.client.local import LocalClient
from sampan.registry.registry import Registry
from tests.apiserver.conftest import call
from tests.harness import eventually


def widget_crd(plural: str = "widgets", kind: str = "Widget", group: str = "example.com", **names: Any) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, **names},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
                    },
                    "additionalPrinterColumns": [{"name": "Size", "type": "string", "jsonPath": ".spec.size"}],
                    "selectableFields": [{"jsonPath": ".spec.size"}],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "string", "enum": ["small", "large"]},
                                        "replicas": {"type": "integer", "default": 1},
                                    },
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                },
                {"name": "v1beta1", "served": True, "storage": False,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
                {"name": "v1alpha1", "served": False, "storage": False,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
            ],
        },
    }


CRDS = crds.CRDS
WIDGETS = ResourceRef("example.com", "v1", "widgets")
WIDGETS_BETA = ResourceRef("example.com", "v1beta1", "widgets")


# -- pure logic --------------------------------------------------------------------------


def test_resource_infos_one_per_served_version() -> None:
    infos = crds.resource_infos(widget_crd(shortNames=["wd"], categories=["all"]))
    assert [i.version for i in infos] == ["v1", "v1beta1"]
    v1, beta = infos
    assert (v1.kind, v1.singular, v1.namespaced, v1.custom) == ("Widget", "widget", True, True)
    assert v1.short_names == ("wd",) and v1.categories == ("all",)
    assert sorted(v1.subresources) == ["scale", "status"]
    assert v1.scale_paths == (".spec.replicas", ".status.replicas", "")
    assert v1.printer_columns == [{"name": "Size", "type": "string", "jsonPath": ".spec.size"}]
    assert v1.selectable_fields == ("spec.size",)
    assert v1.storage_prefix == beta.storage_prefix == "/registry/example.com/widgets/"
    assert beta.subresources == {} and beta.printer_columns == []


def test_name_conflicts_with_builtin_and_other_crds() -> None:
    table = default_table()
    # A built-in of the same group owns "ingresses" and "ing".
    clash = widget_crd("ingresses", "Thing", "networking.k8s.io")
    assert crds.name_conflict(clash, [], table) == ("PluralConflict", '"ingresses" is already in use')
    short = widget_crd("things", "Thing", "networking.k8s.io", shortNames=["ing"])
    assert crds.name_conflict(short, [], table) == ("ShortNamesConflict", '"ing" is already in use')
    kind = widget_crd("things", "Ingress", "networking.k8s.io", singular="thing")
    assert crds.name_conflict(kind, [], table) == ("KindConflict", '"Ingress" is already in use')
    # Another CRD of the group has accepted the singular "widget".
    first = widget_crd()
    first["status"] = {"acceptedNames": crds.desired_names(first)}
    second = widget_crd("gadgets", "Gadget", singular="widget")
    assert crds.name_conflict(second, [first, second], table) == ("SingularConflict", '"widget" is already in use')
    other_group = widget_crd("gadgets", "Gadget", "other.org", singular="widget")
    assert crds.name_conflict(other_group, [first], table) is None


def test_desired_status_keeps_transition_times() -> None:
    crd = widget_crd()
    status = crds.desired_status(crd, None)
    assert status["storedVersions"] == ["v1"]
    assert status["acceptedNames"]["listKind"] == "WidgetList"
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["NamesAccepted"]["reason"] == "NoConflicts"
    assert by_type["Established"]["status"] == "True"
    crd["status"] = copy.deepcopy(status)
    for c in crd["status"]["conditions"]:
        c["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    again = crds.desired_status(crd, None)
    assert {c["lastTransitionTime"] for c in again["conditions"]} == {"2020-01-01T00:00:00Z"}
    conflicted = crds.desired_status(widget_crd(), ("KindConflict", '"Widget" is already in use'))
    by_type = {c["type"]: c for c in conflicted["conditions"]}
    assert by_type["NamesAccepted"]["status"] == "False" and by_type["Established"]["reason"] == "NotAccepted"


# -- the loop over a real registry ---------------------------------------------------------


@pytest.fixture
async def controller(registry: Registry) -> AsyncIterator[crds.CRDController]:
    ctl = crds.CRDController(registry)
    await ctl.start()
    yield ctl
    await ctl.stop()


def established(crd: dict) -> bool:
    return (crds.condition(crd, "Established") or {}).get("status") == "True"


async def test_crd_is_served_and_status_reported(registry: Registry, controller: crds.CRDController) -> None:
    client = LocalClient(registry)
    generation = registry.table.generation
    await client.create(CRDS, widget_crd())
    await eventually(lambda: registry.table.get("example.com", "v1", "widgets"))
    assert registry.table.generation > generation  # the OpenAPI cache keys on this
    crd = await eventually(lambda: _established(client, "widgets.example.com"))
    assert crd["status"]["storedVersions"] == ["v1"]
    assert crd["status"]["acceptedNames"]["plural"] == "widgets"
    assert crd["status"]["acceptedNames"]["singular"] == "widget"
    doc = discovery.api_resource_list(registry.table, "example.com", "v1")
    assert sorted(r["name"] for r in doc["resources"]) == ["widgets", "widgets/scale", "widgets/status"]
    # Versions share storage: an object written in v1 reads back as v1beta1.
    created = await client.create(WIDGETS, {"metadata": {"name": "w1", "namespace": "default"},
                                            "spec": {"size": "small"}})
    assert created["spec"]["replicas"] == 1  # schema default
    beta = await client.get(WIDGETS_BETA, "w1", "default")
    assert beta["apiVersion"] == "example.com/v1beta1" and beta["spec"] == created["spec"]
    with pytest.raises(errors.APIError) as err:
        await client.create(WIDGETS, {"metadata": {"name": "w2", "namespace": "default"}, "spec": {"size": "huge"}})
    assert err.value.code == 422
    assert err.value.status["details"]["causes"][0]["field"] == "spec.size"


async def _established(client: LocalClient, name: str) -> dict | None:
    crd = await client.get(CRDS, name)
    return crd if established(crd) else None


async def test_conflicting_crd_is_not_served(registry: Registry, controller: crds.CRDController) -> None:
    client = LocalClient(registry)
    await client.create(CRDS, widget_crd())
    await eventually(lambda: _established(client, "widgets.example.com"))
    await client.create(CRDS, widget_crd("gadgets", "Gadget", singular="widget"))

    async def names_refused() -> dict | None:
        crd = await client.get(CRDS, "gadgets.example.com")
        cond = crds.condition(crd, "NamesAccepted")
        return crd if cond and cond["status"] == "False" else None

    crd = await eventually(names_refused)
    assert crds.condition(crd, "NamesAccepted")["reason"] == "SingularConflict"
    assert not established(crd)
    assert registry.table.get("example.com", "v1", "gadgets") is None


async def test_delete_removes_instances_then_the_crd(registry: Registry, controller: crds.CRDController) -> None:
    client = LocalClient(registry)
    await client.create(CRDS, widget_crd())
    await eventually(lambda: _established(client, "widgets.example.com"))
    held = {"name": "held", "namespace": "default", "finalizers": ["example.com/hold"]}
    await client.create(WIDGETS, {"metadata": held, "spec": {"size": "small"}})
    await client.create(WIDGETS, {"metadata": {"name": "free", "namespace": "default"}, "spec": {"size": "large"}})
    pending = await client.delete(CRDS, "widgets.example.com")
    assert crds.FINALIZER in pending["metadata"]["finalizers"]
    assert crds.condition(pending, "Terminating")["status"] == "True"

    async def only_held_left() -> bool:
        items = (await client.list(WIDGETS, "default"))["items"]
        names = [i["metadata"]["name"] for i in items]
        return names == ["held"] and bool(items[0]["metadata"].get("deletionTimestamp"))

    await eventually(only_held_left)
    # The CRD waits for the custom resource's own finalizer; the resource stays served meanwhile.
    assert (await client.get(CRDS, "widgets.example.com"))["metadata"]["deletionTimestamp"]
    await client.patch(WIDGETS, "held", {"metadata": {"finalizers": None}}, "merge", "default")

    async def gone() -> bool:
        try:
            await client.get(CRDS, "widgets.example.com")
        except errors.APIError as exc:
            return exc.code == 404
        return False

    await eventually(gone)
    await eventually(lambda: registry.table.get("example.com", "v1", "widgets") is None)
    assert registry.table.get("example.com", "v1beta1", "widgets") is None


async def test_start_serves_stored_crds_before_returning(registry: Registry) -> None:
    client = LocalClient(registry)
    await client.create(CRDS, widget_crd())  # stored while no loop runs, as after a restart
    assert registry.table.get("example.com", "v1", "widgets") is None
    ctl = crds.CRDController(registry)
    await ctl.start()
    try:
        assert registry.table.get("example.com", "v1", "widgets") is not None
        assert established(await client.get(CRDS, "widgets.example.com"))
    finally:
        await ctl.stop()


async def test_update_adds_a_version_and_short_name(registry: Registry, controller: crds.CRDController) -> None:
    client = LocalClient(registry)
    await client.create(CRDS, widget_crd())
    crd = await eventually(lambda: _established(client, "widgets.example.com"))
    crd["spec"]["versions"][2]["served"] = True
    crd["spec"]["names"]["shortNames"] = ["wd"]
    await client.update(CRDS, crd)
    info = await eventually(lambda: registry.table.get("example.com", "v1alpha1", "widgets"))
    assert info.short_names == ("wd",)
    crd = await eventually(lambda: _accepted_short(client))
    assert crd["status"]["acceptedNames"]["shortNames"] == ["wd"]


async def _accepted_short(client: LocalClient) -> dict | None:
    crd = await client.get(CRDS, "widgets.example.com")
    return crd if crd["status"]["acceptedNames"].get("shortNames") else None


# -- CRD validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, field, message",
    [
        (lambda c: c["metadata"].update(name="wrong.example.com"), "metadata.name",
         'Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group'),
        (lambda c: c["spec"]["versions"][1].update(storage=True), "spec.versions",
         "must have exactly one version marked as storage version"),
        (lambda c: c["spec"]["versions"][0].update(storage=False), "spec.versions",
         "must have exactly one version marked as storage version"),
        (lambda c: [v.update(served=False) for v in c["spec"]["versions"]], "spec.versions",
         "must have at least one version marked as served"),
        (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].pop("type"),
         "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
         "Required value: must not be empty for specified object fields"),
        (lambda c: c["spec"].update(group="example"), "spec.group", "should be a domain with at least one dot"),
        (lambda c: c["spec"].update(scope="Global"), "spec.scope", 'Unsupported value: "Global"'),
    ],
)
async def test_invalid_crds_are_rejected(registry: Registry, change: Any, field: str, message: str) -> None:
    crd = widget_crd()
    change(crd)
    with pytest.raises(errors.APIError) as err:
        await LocalClient(registry).create(CRDS, crd)
    assert err.value.code == 422
    causes = err.value.status["details"]["causes"]
    assert any(c["field"] == field and message in c["message"] for c in causes), causes


async def test_group_and_plural_are_immutable(registry: Registry) -> None:
    client = LocalClient(registry)
    crd = await client.create(CRDS, widget_crd())
    crd["spec"]["group"] = "other.org"
    with pytest.raises(errors.APIError) as err:
        await client.update(CRDS, crd)
    assert err.value.code == 422
    fields = {c["field"] for c in err.value.status["details"]["causes"]}
    assert "spec.group" in fields


async def test_racing_crds_with_the_same_singular(registry: Registry, controller: crds.CRDController) -> None:
    client = LocalClient(registry)
    await client.create(CRDS, widget_crd("widgets", "Widget"))
    await client.create(CRDS, widget_crd("gadgets", "Gadget", singular="widget"))

    async def both_decided() -> list[dict] | None:
        found = [await client.get(CRDS, n) for n in ("widgets.example.com", "gadgets.example.com")]
        conds = [crds.condition(c, "NamesAccepted") for c in found]
        return found if all(conds) else None

    found = await eventually(both_decided)
    accepted = [c["metadata"]["name"] for c in found if crds.condition(c, "NamesAccepted")["status"] == "True"]
    assert accepted == ["widgets.example.com"]  # the older one keeps the name


async def test_terminating_crd_is_served_after_restart(registry: Registry) -> None:
    first = crds.CRDController(registry)
    await first.start()
    client = LocalClient(registry)
    try:
        await client.create(CRDS, widget_crd())
        await eventually(lambda: _established(client, "widgets.example.com"))
        held = {"name": "held", "namespace": "default", "finalizers": ["example.com/hold"]}
        await client.create(WIDGETS, {"metadata": held, "spec": {"size": "small"}})
        await client.delete(CRDS, "widgets.example.com")
        await eventually(lambda: _held_marked(client))
    finally:
        await first.stop()
    # A new server process: a fresh table over the same store.
    restarted = Registry(registry.store)
    second = crds.CRDController(restarted)
    await second.start()
    try:
        assert restarted.table.get("example.com", "v1", "widgets") is not None
        client = LocalClient(restarted)
        await client.patch(WIDGETS, "held", {"metadata": {"finalizers": None}}, "merge", "default")
        await eventually(lambda: restarted.table.get("example.com", "v1", "widgets") is None)
        with pytest.raises(errors.APIError) as err:
            await client.get(CRDS, "widgets.example.com")
        assert err.value.code == 404
    finally:
        await second.stop()


async def _held_marked(client: LocalClient) -> bool:
    item = await client.get(WIDGETS, "held", "default")
    return bool(item["metadata"].get("deletionTimestamp"))


async def test_discovery_and_openapi_follow_crds(
    registry: Registry, controller: crds.CRDController, client: TestClient
) -> None:
    _, root_before = await call(client, "GET", "/openapi/v3")
    assert "apis/example.com/v1" not in root_before["paths"]
    await LocalClient(registry).create(CRDS, widget_crd(shortNames=["wd"]))
    await eventually(lambda: registry.table.get("example.com", "v1", "widgets"))

    status, groups = await call(client, "GET", "/apis")
    assert status == 200
    group = next(g for g in groups["groups"] if g["name"] == "example.com")
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    _, aggregated = await call(client, "GET", "/apis", Accept=DISCOVERY_V2)
    item = next(i for i in aggregated["items"] if i["metadata"].get("name") == "example.com")
    widgets = item["versions"][0]["resources"][0]
    assert (widgets["resource"], widgets["shortNames"], widgets["scope"]) == ("widgets", ["wd"], "Namespaced")
    assert sorted(s["subresource"] for s in widgets["subresources"]) == ["scale", "status"]

    _, root = await call(client, "GET", "/openapi/v3")
    url = root["paths"]["apis/example.com/v1"]["serverRelativeURL"]
    status, doc = await call(client, "GET", url)
    assert status == 200
    schema = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert schema["properties"]["spec"]["properties"]["size"]["enum"] == ["small", "large"]
    assert "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/scale" in doc["paths"]
    _, v2 = await call(client, "GET", "/openapi/v2")
    assert "com.example.v1.Widget" in v2["definitions"]

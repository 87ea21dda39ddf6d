"""CRD edge cases: no new custom resources while the CRD terminates, a custom listKind
in list responses."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sampan.api import errors
from sampan.apiserver import crds
from sampan.apiserver.app import build_app
from sampan.client.local import LocalClient
from sampan.registry.registry import Registry
from tests.apiserver.conftest import call
from tests.apiserver.test_crds import (  # noqa: F401  (fixtures)
    CRDS,
    WIDGETS,
    _established,
    controller,
    eventually,
    widget_crd,
)


async def test_create_refused_while_crd_terminates(
    registry: Registry, controller: crds.CRDController  # noqa: F811
) -> None:
    client = LocalClient(registry)
    await client.create(CRDS, widget_crd())
    await eventually(lambda: _established(client, "widgets.example.com"))
    held = {"name": "held", "namespace": "default", "finalizers": ["example.com/hold"]}
    await client.create(WIDGETS, {"metadata": held, "spec": {"size": "small"}})
    await client.delete(CRDS, "widgets.example.com")

    async def terminating_served() -> bool:
        info = registry.table.get("example.com", "v1", "widgets")
        return info is not None and info.terminating

    await eventually(terminating_served)
    with pytest.raises(errors.APIError) as err:
        await client.create(WIDGETS, {"metadata": {"name": "late", "namespace": "default"}, "spec": {"size": "small"}})
    assert err.value.code == 405
    assert err.value.status["reason"] == "MethodNotAllowed"
    assert err.value.status["message"] == "create not allowed while custom resource definition is terminating"

    # Over HTTP too, and the held resource can still be read and updated (to drop its finalizer).
    async with TestClient(TestServer(build_app(registry))) as http:
        body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "late"}, "spec": {}}
        code, status = await call(http, "POST", "/apis/example.com/v1/namespaces/default/widgets", body)
        assert (code, status["kind"], status["code"]) == (405, "Status", 405)
        code, _ = await call(http, "GET", "/apis/example.com/v1/namespaces/default/widgets/held")
        assert code == 200
    await client.patch(WIDGETS, "held", {"metadata": {"finalizers": None}}, "merge", "default")
    await eventually(lambda: registry.table.get("example.com", "v1", "widgets") is None)


async def test_custom_list_kind_in_list_responses(
    registry: Registry, controller: crds.CRDController  # noqa: F811
) -> None:
    client = LocalClient(registry)
    await client.create(CRDS, widget_crd(listKind="WidgetCollection"))
    crd = await eventually(lambda: _established(client, "widgets.example.com"))
    assert crd["status"]["acceptedNames"]["listKind"] == "WidgetCollection"
    await client.create(WIDGETS, {"metadata": {"name": "w", "namespace": "default"}, "spec": {"size": "small"}})
    listed = await client.list(WIDGETS, "default")
    assert listed["kind"] == "WidgetCollection"
    async with TestClient(TestServer(build_app(registry))) as http:
        code, body = await call(http, "GET", "/apis/example.com/v1/widgets")
        assert code == 200 and body["kind"] == "WidgetCollection"
        assert [i["metadata"]["name"] for i in body["items"]] == ["w"]

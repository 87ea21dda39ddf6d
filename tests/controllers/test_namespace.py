"""Deleting a namespace deletes its content (custom resources too), reports progress in
upstream's conditions, then removes the namespace."""

from __future__ import annotations

import asyncio

import pytest

from sampan.api.errors import APIError
from sampan.client.interface import CONFIGMAPS, NAMESPACES, PODS, SECRETS, ResourceRef
from tests.controllers.conftest import eventually

POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def _gone(client, ref, name, ns=None) -> bool:
    try:
        await client.get(ref, name, ns)
    except APIError as exc:
        return exc.code == 404
    return False


async def test_namespace_content_deleted_then_namespace_removed(client, start_controllers) -> None:
    await start_controllers("namespace")
    await client.create(NAMESPACES, {"metadata": {"name": "doomed"}})
    await client.create(CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "b"}}, "doomed")
    await client.create(SECRETS, {"metadata": {"name": "s"}}, "doomed")
    await client.create(PODS, POD, "doomed")
    await client.create(CONFIGMAPS, {"metadata": {"name": "keep"}}, "default")

    pending = await client.delete(NAMESPACES, "doomed")
    assert pending["status"]["phase"] == "Terminating"

    await eventually(lambda: _gone(client, NAMESPACES, "doomed"))
    assert await _gone(client, CONFIGMAPS, "cm", "doomed")
    assert await _gone(client, PODS, "p", "doomed")
    assert (await client.get(CONFIGMAPS, "keep", "default"))["metadata"]["name"] == "keep"


async def test_finalizers_keep_namespace_until_released(client, start_controllers) -> None:
    await start_controllers("namespace")
    await client.create(NAMESPACES, {"metadata": {"name": "held"}})
    await client.create(CONFIGMAPS, {"metadata": {"name": "cm", "finalizers": ["example.com/hold"]}}, "held")
    await client.delete(NAMESPACES, "held")

    async def reports_finalizer() -> dict:
        ns = await client.get(NAMESPACES, "held")
        conds = {c["type"]: c for c in ns["status"].get("conditions") or []}
        fin = conds.get("NamespaceFinalizersRemaining")
        return conds if fin and fin["status"] == "True" else {}

    conds = await eventually(reports_finalizer)
    assert conds["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
    assert "example.com/hold in 1 resource instances" in conds["NamespaceFinalizersRemaining"]["message"]
    assert conds["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
    assert "configmaps. has 1 resource instances" in conds["NamespaceContentRemaining"]["message"]
    assert conds["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
    assert conds["NamespaceDeletionContentFailure"]["reason"] == "ContentDeleted"

    await client.patch(CONFIGMAPS, "cm", {"metadata": {"finalizers": None}}, "merge", "held")
    await eventually(lambda: _gone(client, NAMESPACES, "held"))


async def test_custom_resources_are_deleted(registry, client, start_controllers) -> None:
    from sampan.apiserver.resources import ResourceInfo

    registry.table.add(ResourceInfo("example.com", "v1", "widgets", "widget", "Widget", True, custom=True))
    widgets = ResourceRef("example.com", "v1", "widgets")
    await start_controllers("namespace")
    await client.create(NAMESPACES, {"metadata": {"name": "crs"}})
    await client.create(widgets, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, "crs")
    await client.delete(NAMESPACES, "crs")
    await eventually(lambda: _gone(client, NAMESPACES, "crs"))
    assert await _gone(client, widgets, "w", "crs")


async def test_creating_in_terminating_namespace_is_forbidden(client, start_controllers) -> None:
    await client.create(NAMESPACES, {"metadata": {"name": "closing"}})
    await client.delete(NAMESPACES, "closing")  # no controller yet: stays Terminating
    with pytest.raises(APIError) as info:
        await client.create(CONFIGMAPS, {"metadata": {"name": "late"}}, "closing")
    assert info.value.code == 403
    await start_controllers("namespace")
    await eventually(lambda: _gone(client, NAMESPACES, "closing"))
    await asyncio.sleep(0)

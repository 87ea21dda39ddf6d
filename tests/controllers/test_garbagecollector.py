"""Garbage collection by ownerReferences: background, foreground and orphan deletion,
dangling references, cluster-scoped owners and custom resources."""

from __future__ import annotations

import asyncio

from sampan.api.errors import APIError
from sampan.apiserver.resources import ResourceInfo
from sampan.client.interface import CONFIGMAPS, ResourceRef
from tests.controllers.conftest import eventually

CLUSTERROLES = ResourceRef("rbac.authorization.k8s.io", "v1", "clusterroles", False)


def owned_by(owner: dict, block: bool = False) -> list[dict]:
    ref = {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", "ConfigMap"),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return [ref]


async def exists(client, ref, name, ns="default") -> bool:
    try:
        await client.get(ref, name, ns if ref.namespaced else None)
    except APIError as exc:
        assert exc.code == 404
        return False
    return True


async def make_family(client, n: int = 2, block: bool = False) -> dict:
    owner = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, "default")
    owner.setdefault("kind", "ConfigMap")
    for i in range(n):
        meta = {"name": f"dep-{i}", "ownerReferences": owned_by(owner, block)}
        await client.create(CONFIGMAPS, {"metadata": meta}, "default")
    return owner


async def test_background_deletes_dependents(client, start_controllers) -> None:
    await start_controllers("garbagecollector")
    await make_family(client)
    await client.delete(CONFIGMAPS, "owner", "default", propagation_policy="Background")

    async def all_gone() -> bool:
        return not any([await exists(client, CONFIGMAPS, f"dep-{i}") for i in range(2)])

    assert await eventually(all_gone)


async def test_foreground_waits_for_blocking_dependents(client, start_controllers) -> None:
    await start_controllers("garbagecollector")
    owner = await make_family(client, block=True)
    # A finalizer on one dependent keeps it, and so the owner, around.
    await client.patch(CONFIGMAPS, "dep-0", {"metadata": {"finalizers": ["example.com/hold"]}}, "merge", "default")
    pending = await client.delete(CONFIGMAPS, "owner", "default", propagation_policy="Foreground")
    assert "foregroundDeletion" in pending["metadata"]["finalizers"]

    async def dependents_deleting() -> bool:
        dep0 = await client.get(CONFIGMAPS, "dep-0", "default")
        return bool(dep0["metadata"].get("deletionTimestamp")) and not await exists(client, CONFIGMAPS, "dep-1")

    await eventually(dependents_deleting)
    live = await client.get(CONFIGMAPS, "owner", "default")
    assert live["metadata"]["uid"] == owner["metadata"]["uid"]
    assert live["metadata"]["finalizers"] == ["foregroundDeletion"]

    await client.patch(CONFIGMAPS, "dep-0", {"metadata": {"finalizers": None}}, "merge", "default")

    async def owner_gone() -> bool:
        return not await exists(client, CONFIGMAPS, "owner")

    assert await eventually(owner_gone)


async def test_orphan_keeps_dependents_without_the_reference(client, start_controllers) -> None:
    await start_controllers("garbagecollector")
    await make_family(client)
    await client.delete(CONFIGMAPS, "owner", "default", propagation_policy="Orphan")

    async def owner_gone() -> bool:
        return not await exists(client, CONFIGMAPS, "owner")

    await eventually(owner_gone)
    for i in range(2):
        dep = await client.get(CONFIGMAPS, f"dep-{i}", "default")
        assert "ownerReferences" not in dep["metadata"]


async def test_dangling_reference_is_collected(client, start_controllers) -> None:
    await start_controllers("garbagecollector")
    ghost = {"metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000001"}, "kind": "ConfigMap"}
    await client.create(CONFIGMAPS, {"metadata": {"name": "lost", "ownerReferences": owned_by(ghost)}}, "default")
    # An owner with the same name but another uid does not count either.
    await client.create(CONFIGMAPS, {"metadata": {"name": "ghost"}}, "default")

    async def collected() -> bool:
        return not await exists(client, CONFIGMAPS, "lost")

    assert await eventually(collected)
    assert await exists(client, CONFIGMAPS, "ghost")


async def test_live_owner_keeps_dependent_and_drops_dangling_ref(client, start_controllers) -> None:
    await start_controllers("garbagecollector")
    owner = await client.create(CONFIGMAPS, {"metadata": {"name": "alive"}}, "default")
    owner["kind"] = "ConfigMap"
    ghost = {"metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000002"}, "kind": "ConfigMap"}
    refs = owned_by(owner) + owned_by(ghost)
    await client.create(CONFIGMAPS, {"metadata": {"name": "kept", "ownerReferences": refs}}, "default")

    async def pruned() -> list:
        dep = await client.get(CONFIGMAPS, "kept", "default")
        names = [r["name"] for r in dep["metadata"].get("ownerReferences") or []]
        return names if names == ["alive"] else []

    assert await eventually(pruned) == ["alive"]


async def test_cluster_scoped_owner_of_namespaced_dependent(client, start_controllers) -> None:
    await start_controllers("garbagecollector")
    role = await client.create(CLUSTERROLES, {"metadata": {"name": "owner-role"}, "rules": []})
    role.update(apiVersion="rbac.authorization.k8s.io/v1", kind="ClusterRole")
    await client.create(CONFIGMAPS, {"metadata": {"name": "child", "ownerReferences": owned_by(role)}}, "default")
    await asyncio.sleep(0.2)
    assert await exists(client, CONFIGMAPS, "child")
    await client.delete(CLUSTERROLES, "owner-role")

    async def collected() -> bool:
        return not await exists(client, CONFIGMAPS, "child")

    assert await eventually(collected)


async def test_custom_resource_owner_added_at_runtime(registry, client, start_controllers) -> None:
    await start_controllers("garbagecollector")
    registry.table.add(ResourceInfo("example.com", "v1", "widgets", "widget", "Widget", True, custom=True))
    widgets = ResourceRef("example.com", "v1", "widgets")
    widget = await client.create(widgets, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, "default")
    part = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "part", "ownerReferences": owned_by(widget)}}
    await client.create(widgets, part, "default")
    await client.create(CONFIGMAPS, {"metadata": {"name": "widget-cm", "ownerReferences": owned_by(widget)}}, "default")
    await client.delete(widgets, "w", "default", propagation_policy="Background")

    async def collected() -> bool:
        return not await exists(client, widgets, "part") and not await exists(client, CONFIGMAPS, "widget-cm")

    assert await eventually(collected)

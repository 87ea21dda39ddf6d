"""Repeated writes by one manager: the cheap path must give exactly what the full comparison gives."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sampan.api.apply import fieldpath as fp
from sampan.api.apply import managed
from sampan.api.apply.renewal import scalar_changes
from sampan.api.schemas import schema_for
from sampan.client.interface import ResourceRef
from sampan.client.local import LocalClient
from sampan.registry.registry import Registry

GV = "coordination.k8s.io/v1"
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"
LEASES = ResourceRef("coordination.k8s.io", "v1", "leases")


def lease(renew: str, holder: str = "n1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "Lease",
        "metadata": {"name": "n1", "namespace": "kube-node-lease", "resourceVersion": "5", **meta},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 40, "renewTime": renew},
    }


def write(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str, fast: bool) -> dict[str, Any]:
    new = copy.deepcopy(new)
    schema = schema_for("coordination.k8s.io", "v1", "Lease")
    if fast:
        managed.update_managed_fields(old, new, manager, schema, GV, now)
    else:
        original = managed._renewed
        managed._renewed = lambda *a: False  # type: ignore[assignment]
        try:
            managed.update_managed_fields(old, new, manager, schema, GV, now)
        finally:
            managed._renewed = original  # type: ignore[assignment]
    return new


def created(manager: str = "kubelet") -> dict[str, Any]:
    return write(None, lease(T0), manager, T0, fast=False)


@pytest.mark.parametrize(
    "manager,change",
    [
        ("kubelet", {"renewTime": T1}),  # the renewal: only the time moves
        ("kubelet", {"renewTime": T1, "holderIdentity": "n2"}),
        ("other", {"renewTime": T1}),  # another manager takes the field over
        ("kubelet", {"leaseTransitions": 1}),  # a new field
    ],
)
def test_same_result_as_full_comparison(manager: str, change: dict[str, Any]) -> None:
    old = created()
    new = copy.deepcopy(old)
    new["spec"].update(change)
    new["metadata"].pop("resourceVersion")
    fast = write(old, new, manager, T1, fast=True)
    slow = write(old, new, manager, T1, fast=False)
    assert fast["metadata"]["managedFields"] == slow["metadata"]["managedFields"]


def test_renewal_refreshes_only_the_time() -> None:
    old = created()
    new = copy.deepcopy(old)
    new["spec"]["renewTime"] = T2
    out = write(old, new, "kubelet", T2, fast=True)
    (entry,) = out["metadata"]["managedFields"]
    assert entry["time"] == T2
    assert entry["fieldsV1"] == old["metadata"]["managedFields"][0]["fieldsV1"]


def test_shared_field_goes_the_full_way() -> None:
    old = created()
    # A second manager also claims renewTime (as a client may by sending managedFields).
    entries = old["metadata"]["managedFields"]
    entries.append({**entries[0], "manager": "other"})
    new = copy.deepcopy(old)
    new["spec"]["renewTime"] = T1
    fast = write(old, new, "kubelet", T1, fast=True)
    slow = write(old, new, "kubelet", T1, fast=False)
    assert fast["metadata"]["managedFields"] == slow["metadata"]["managedFields"]
    other = [e for e in fast["metadata"]["managedFields"] if e["manager"] == "other"]
    assert "f:renewTime" not in other[0]["fieldsV1"]["f:spec"]


def test_scalar_changes_declines_structure_changes() -> None:
    assert scalar_changes({"a": {"b": 1, "c": 1}}, {"a": {"b": 2, "c": 1}}) == {fp.make_path("a", "b")}
    assert scalar_changes({"a": [1]}, {"a": [2]}) is None
    assert scalar_changes({"a": 1}, {"a": 1, "b": 2}) is None
    assert scalar_changes({"a": 1}, {"a": None}) is None
    assert scalar_changes({"a": {"b": 1}}, {"a": 3}) is None
    assert scalar_changes({"a": 1}, {"a": 1}) == set()


async def test_lease_renewals_through_the_registry(registry: Registry) -> None:
    client = LocalClient(registry, field_manager="sampan-node")
    obj = await client.create(LEASES, lease(T0))
    first = obj["metadata"]["managedFields"]
    obj["spec"]["renewTime"] = T1
    obj = await client.update(LEASES, obj)
    (entry,) = obj["metadata"]["managedFields"]
    assert entry["manager"] == "sampan-node" and entry["fieldsV1"] == first[0]["fieldsV1"]
    assert obj["spec"]["renewTime"] == T1
    # A different manager changing the holder takes that field over.
    other = LocalClient(registry, field_manager="controller")
    obj["spec"]["holderIdentity"] = "n2"
    obj = await other.update(LEASES, obj)
    owners = {e["manager"]: e["fieldsV1"]["f:spec"] for e in obj["metadata"]["managedFields"]}
    assert "f:holderIdentity" in owners["controller"] and "f:holderIdentity" not in owners["sampan-node"]


def test_entry_order_matches_full_comparison() -> None:
    # "kubelet" owns only renewTime and "other" the rest: entries must come out in the same order.
    old = created("other")
    new = copy.deepcopy(old)
    new["spec"]["renewTime"] = T1
    old = write(old, new, "kubelet", T1, fast=False)
    assert [e["manager"] for e in old["metadata"]["managedFields"]] == ["other", "kubelet"]
    again = copy.deepcopy(old)
    again["spec"]["renewTime"] = T2
    fast = write(old, again, "kubelet", T2, fast=True)
    slow = write(old, again, "kubelet", T2, fast=False)
    assert fast["metadata"]["managedFields"] == slow["metadata"]["managedFields"]

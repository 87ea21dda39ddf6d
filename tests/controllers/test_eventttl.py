"""Event retention: Events last written before the TTL are deleted, recent ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sampan.client.interface import EVENTS
from sampan.controllers.base import ControllerOptions
from sampan.controllers.eventttl import last_written
from sampan.registry.registry import Registry
from tests.controllers.conftest import eventually


def stamp(ago: timedelta) -> str:
    return (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "default"},
            "reason": "Test", "message": name, "type": "Normal", "source": {"component": "test"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}}


async def write_back_then(registry: Registry, name: str, created: timedelta, rewritten: timedelta | None) -> None:
    """An Event as the store holds it after being written that long ago (and maybe again later)."""
    obj = event(name)
    obj["metadata"].update(uid=f"uid-{name}", creationTimestamp=stamp(created), managedFields=[
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": stamp(created),
         "fieldsType": "FieldsV1", "fieldsV1": {"f:message": {}}}])
    if rewritten is not None:
        obj["metadata"]["managedFields"].append(
            {"manager": "default-scheduler", "operation": "Update", "apiVersion": "v1", "time": stamp(rewritten),
             "fieldsType": "FieldsV1", "fieldsV1": {"f:count": {}}})
    rs = registry.must("", "v1", "events")
    await registry.store.create(rs.key("default", name), rs.encode(obj))


def test_last_written_is_the_latest_server_time() -> None:
    obj = event("a")
    obj["metadata"].update(creationTimestamp=stamp(timedelta(hours=2)),
                           managedFields=[{"manager": "m", "time": stamp(timedelta(minutes=3))}])
    assert abs(last_written(obj) - (datetime.now(UTC) - timedelta(minutes=3)).timestamp()) < 2
    assert last_written({"metadata": {}}) is None
    assert last_written({"metadata": {"creationTimestamp": "not a time"}}) is None


async def test_expired_events_are_deleted_and_recent_ones_kept(client, registry, start_controllers) -> None:
    hour = timedelta(hours=1)
    await write_back_then(registry, "old", 2 * hour, None)
    await write_back_then(registry, "old-recorded-again", 2 * hour, timedelta(minutes=5))
    await write_back_then(registry, "old-rewritten-long-ago", 3 * hour, 2 * hour)
    await client.create(EVENTS, event("new"), "default")
    await start_controllers("event-ttl", options=ControllerOptions(extra={"event_ttl": 3600, "event_ttl_period": 0.2}))

    async def names() -> set[str] | None:
        found = {e["metadata"]["name"] for e in (await client.list(EVENTS, "default"))["items"]}
        return found if not {"old", "old-rewritten-long-ago"} & found else None

    assert await eventually(names) == {"old-recorded-again", "new"}


async def test_a_zero_ttl_keeps_every_event(client, start_controllers) -> None:
    manager = await start_controllers("event-ttl", options=ControllerOptions(extra={"event_ttl": 0}))
    assert len(manager.get("event-ttl").queue) == 0

"""Events' create path: what it remembers per body shape gives exactly what the full
decoding checks and managed-fields computation give, and never hides their errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sampan.api.errors import APIError
from sampan.registry.event_strategy import EventStrategy, shape
from sampan.registry.options import WriteOptions
from sampan.registry.registry import Registry
from sampan.registry.strategy import Strategy
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore

# Set by the server on every create (or on every second): not comparable between runs.
_VOLATILE = ("uid", "creationTimestamp", "resourceVersion")


async def _registry(memo: bool) -> tuple[Registry, MemoryStore]:
    store = MemoryStore()
    await store.start()
    reg = Registry(store)
    await bootstrap(reg)
    if not memo:
        for group in ("", "events.k8s.io"):
            reg.set_strategy(group, "events", Strategy(group, "events", False))
    return reg, store


@pytest.fixture
async def registries() -> Any:
    fast, fast_store = await _registry(memo=True)
    slow, slow_store = await _registry(memo=False)
    yield fast, slow
    await fast_store.close()
    await slow_store.close()


def core_event(name: str, message: str = "Successfully assigned default/p to n1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": "p", "namespace": "default", "uid": "u1"},
        "reason": "Scheduled",
        "message": message,
        "type": "Normal",
        "source": {"component": "default-scheduler"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
        "eventTime": None,
        "reportingComponent": "default-scheduler",
        "reportingInstance": "default-scheduler",
    }
    body.update(extra)
    return body


def events_v1_event(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "example.com/controller",
        "reportingInstance": "controller-1",
        "action": "Reconcile",
        "reason": "Synced",
        "note": "synced",
        "type": "Normal",
        "regarding": {"kind": "Pod", "apiVersion": "v1", "name": "p", "namespace": "default"},
    }


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for key in _VOLATILE:
        out["metadata"].pop(key, None)
    for entry in out["metadata"].get("managedFields") or []:
        entry.pop("time", None)
    return out


async def create(reg: Registry, body: dict[str, Any], version: str = "v1", group: str = "", **opts: Any) -> Any:
    rs = reg.must(group, version, "events")
    options = WriteOptions(field_manager=opts.pop("manager", "default-scheduler"), **opts)
    created = await rs.create("default", copy.deepcopy(body), options)
    return created, options.warnings


@pytest.mark.parametrize(
    "bodies",
    [
        # The second of each shape comes from the memo: it must equal the full path's result.
        [core_event("a.1"), core_event("b.2", "another message"), core_event("c.3")],
        [core_event("a.1", source={"component": "kubelet", "host": "n1"}), core_event("b.2", source={})],
        [core_event("a.1", metadata={"name": "a.1", "namespace": "default", "labels": {"x": "1"}}),
         core_event("b.2", metadata={"name": "b.2", "namespace": "default", "labels": {"y": "2"}})],
        [core_event("a.1", count=7), core_event("b.2", count=8, eventTime="2026-01-01T00:00:00.000000Z")],
    ],
)
async def test_remembered_shapes_give_what_the_full_path_gives(registries: Any, bodies: list[dict]) -> None:
    fast, slow = registries
    for i, body in enumerate(bodies + bodies[::-1]):
        body = {**body, "metadata": {**body["metadata"], "name": f"{body['metadata']['name']}.{i}"}}
        got, _ = await create(fast, body)
        want, _ = await create(slow, body)
        assert comparable(got) == comparable(want)
        assert got["metadata"]["managedFields"][0]["manager"] == "default-scheduler"
        assert got["metadata"]["managedFields"][0]["time"]


async def test_events_v1_and_other_managers(registries: Any) -> None:
    fast, slow = registries
    for i, manager in enumerate(["controller", "controller", "other", "controller"]):
        body = events_v1_event(f"e.{i}")
        got, _ = await create(fast, body, group="events.k8s.io", manager=manager)
        want, _ = await create(slow, body, group="events.k8s.io", manager=manager)
        assert comparable(got) == comparable(want)
        assert got["metadata"]["managedFields"][0]["manager"] == manager
    # Read back as core/v1, the stored event still says which version its manager wrote.
    stored = await fast.must("", "v1", "events").get("default", "e.0")
    assert stored["metadata"]["managedFields"][0]["apiVersion"] == "events.k8s.io/v1"
    assert stored["involvedObject"]["name"] == "p"


async def test_no_manager_records_no_managed_fields(registries: Any) -> None:
    fast, _ = registries
    for name in ("a", "b"):
        got, _ = await create(fast, core_event(name), manager="")
        assert "managedFields" not in got["metadata"]


async def test_errors_and_warnings_are_never_skipped(registries: Any) -> None:
    fast, _ = registries
    await create(fast, core_event("ok.1"))  # a clean shape is remembered
    for attempt in range(2):
        with pytest.raises(APIError) as caught:
            await create(fast, core_event(f"bad.{attempt}", count="1"))  # wrong type, same keys
        assert caught.value.code == 400
        with pytest.raises(APIError) as caught:
            await create(fast, core_event(f"unknown.{attempt}", bogus="x"))
        assert caught.value.code == 400 and "unknown field" in caught.value.status["message"]
    for attempt in range(2):
        got, warnings = await create(fast, core_event(f"warn.{attempt}", bogus="x"), field_validation="Warn")
        assert warnings == ['unknown field "bogus"'] and "bogus" not in got


async def test_client_sent_managed_fields_are_kept(registries: Any) -> None:
    fast, slow = registries
    sent = [{"manager": "mine", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:reason": {}}}]
    for name in ("a", "b"):
        body = core_event(name)
        body["metadata"]["managedFields"] = sent
        got, _ = await create(fast, body)
        want, _ = await create(slow, body)
        assert comparable(got) == comparable(want)


def test_shape() -> None:
    assert shape({"a": 1, "b": {"c": "x"}}) == shape({"a": 2, "b": {"c": "y"}})
    assert shape({"a": 1}) != shape({"a": "1"})
    assert shape({"a": 1}) != shape({"b": 1})
    assert shape({"a": True}) != shape({"a": 1})
    assert shape({"a": None}) != shape({"a": {}})
    assert shape({"a": [1]}) is None and shape({"a": {"b": [1]}}) is None
    assert shape({"a": 1.5}) is None
    assert shape(["not", "an", "object"]) is None  # type: ignore[arg-type]


def test_builtin_strategy_for_events() -> None:
    from sampan.registry.kinds import builtin_strategy

    assert isinstance(builtin_strategy("", "events", False), EventStrategy)
    assert isinstance(builtin_strategy("events.k8s.io", "events", False), EventStrategy)
    assert not isinstance(builtin_strategy("", "configmaps", False), EventStrategy)


async def test_full_path_runs_once_per_shape(registries: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sampan.registry import hooks

    calls = {"decoding": 0, "fields": 0}
    real_decoding, real_fields = hooks.check_decoding, hooks.update_managed_fields

    def decoding(*args: Any) -> None:
        calls["decoding"] += 1
        real_decoding(*args)

    def fields(*args: Any) -> None:
        calls["fields"] += 1
        real_fields(*args)

    monkeypatch.setattr(hooks, "check_decoding", decoding)
    monkeypatch.setattr(hooks, "update_managed_fields", fields)
    fast, _ = registries
    for i in range(5):
        await create(fast, core_event(f"same.{i}", f"message {i}"))
    assert calls == {"decoding": 1, "fields": 1}
    await create(fast, core_event("other", source={"component": "x", "host": "h"}))
    assert calls == {"decoding": 2, "fields": 2}

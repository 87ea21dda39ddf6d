"""LocalClient's bound on concurrent writes (the controller manager's client uses it)."""

from __future__ import annotations

import asyncio

import pytest

from sampan.client.interface import CONFIGMAPS
from sampan.client.local import LocalClient
from sampan.registry.registry import Registry
from sampan.registry.store import ResourceStore


async def test_writes_beyond_the_bound_wait_their_turn(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = 0, 0
    real_create = ResourceStore.create

    async def slow_create(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.01)
            return await real_create(self, *args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(ResourceStore, "create", slow_create)
    bounded = LocalClient(registry, field_manager="test", max_in_flight_writes=3)
    made = await asyncio.gather(*(bounded.create(CONFIGMAPS, {"metadata": {"name": f"c{i}"}}, "default")
                                  for i in range(12)))
    assert len(made) == 12 and most == 3
    # A client without a bound runs every write at once.
    most = 0
    await asyncio.gather(*(LocalClient(registry).create(CONFIGMAPS, {"metadata": {"name": f"d{i}"}}, "default")
                           for i in range(12)))
    assert most == 12


async def test_a_write_cancelled_while_waiting_never_runs(registry: Registry) -> None:
    bounded = LocalClient(registry, field_manager="test", max_in_flight_writes=1)
    assert bounded._write_slots is not None
    await bounded._write_slots.acquire()  # the one slot is taken
    waiting = asyncio.ensure_future(bounded.create(CONFIGMAPS, {"metadata": {"name": "never"}}, "default"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    bounded._write_slots.release()
    names = [c["metadata"]["name"] for c in (await bounded.list(CONFIGMAPS, "default"))["items"]]
    assert "never" not in names

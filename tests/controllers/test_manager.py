"""The controller framework: informers feed keys, workers reconcile, errors retry."""

from __future__ import annotations

import pytest

from sampan.client.interface import CONFIGMAPS, split_key
from sampan.controllers.base import REGISTERED, Controller, register
from sampan.controllers.manager import ControllerManager, load_all
from tests.controllers.conftest import eventually


class _Echo(Controller):
    """Copies each ConfigMap's data key ``a`` into label ``echo``; fails once first."""

    name = "test-echo"
    seen_failures = 0

    def setup(self) -> None:
        self.configmaps = self.watch(CONFIGMAPS)

    async def reconcile(self, key: str) -> None:
        cm = self.configmaps.get(key)
        if cm is None:
            return
        if _Echo.seen_failures == 0:
            _Echo.seen_failures += 1
            raise RuntimeError("first attempt fails on purpose")
        value = (cm.get("data") or {}).get("a", "")
        if (cm["metadata"].get("labels") or {}).get("echo") != value:
            ns, name = split_key(key)
            await self.client.patch(CONFIGMAPS, name, {"metadata": {"labels": {"echo": value}}}, "merge", ns)


@pytest.fixture
def echo_registered() -> None:
    register(_Echo)
    yield
    REGISTERED.pop(_Echo.name, None)


async def test_reconcile_retries_and_converges(echo_registered: None, client, start_controllers) -> None:
    await start_controllers("test-echo")
    await client.create(CONFIGMAPS, {"metadata": {"name": "x"}, "data": {"a": "one"}}, "default")

    async def labelled() -> bool:
        cm = await client.get(CONFIGMAPS, "x", "default")
        return cm["metadata"].get("labels", {}).get("echo") == "one"

    await eventually(labelled)
    assert _Echo.seen_failures == 1


def test_unknown_controller_is_refused(client) -> None:
    with pytest.raises(ValueError, match="unknown controllers: nope"):
        ControllerManager(client, ["nope"])


def test_all_modules_register() -> None:
    assert all(cls.name == name for name, cls in load_all().items())


async def test_informer_objects_are_frozen_in_check_mode(
    echo_registered: None, client, start_controllers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sampan.client.compact import CachedObjectMutated

    monkeypatch.setenv("SAMPAN_CHECK_INFORMER_MUTATIONS", "1")
    manager = await start_controllers("test-echo")
    await client.create(CONFIGMAPS, {"metadata": {"name": "f"}, "data": {"a": "v"}}, "default")
    informer = manager.get("test-echo").configmaps
    cached = await eventually(lambda: informer.get("default/f"))
    assert "managedFields" not in cached["metadata"]
    with pytest.raises(CachedObjectMutated):
        cached["data"]["a"] = "changed"


async def test_a_shared_factory_outlives_the_manager(echo_registered: None, client) -> None:
    from sampan.client.informer import InformerFactory

    factory = InformerFactory(client)
    manager = ControllerManager(client, ["test-echo"], informers=factory)
    await manager.start()
    assert manager.context.informers is factory
    await manager.stop()
    try:
        assert factory.informers() and all(i.running for i in factory.informers())
    finally:
        await factory.stop()

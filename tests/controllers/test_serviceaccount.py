"""Every active namespace gets a default ServiceAccount, and keeps it."""

from __future__ import annotations

from sampan.api.errors import APIError
from sampan.client.interface import NAMESPACES, SERVICEACCOUNTS
from tests.controllers.conftest import eventually


async def test_new_namespace_gets_default_account(client, start_controllers) -> None:
    await start_controllers("serviceaccount")
    await client.create(NAMESPACES, {"metadata": {"name": "team-a"}})

    async def has_default() -> bool:
        try:
            sa = await client.get(SERVICEACCOUNTS, "default", "team-a")
        except APIError:
            return False
        return sa["metadata"]["namespace"] == "team-a"

    assert await eventually(has_default)


async def test_deleted_default_account_is_recreated(client, start_controllers) -> None:
    await start_controllers("serviceaccount")
    first = await client.get(SERVICEACCOUNTS, "default", "default")
    await client.delete(SERVICEACCOUNTS, "default", "default")

    async def recreated() -> bool:
        try:
            sa = await client.get(SERVICEACCOUNTS, "default", "default")
        except APIError:
            return False
        return sa["metadata"]["uid"] != first["metadata"]["uid"]

    assert await eventually(recreated)


async def test_other_accounts_are_left_alone(client, start_controllers) -> None:
    await start_controllers("serviceaccount")
    await client.create(SERVICEACCOUNTS, {"metadata": {"name": "builder"}}, "default")
    await client.delete(SERVICEACCOUNTS, "builder", "default")
    await client.create(NAMESPACES, {"metadata": {"name": "probe"}})
    async def probe_has_default() -> bool:
        try:
            return bool(await client.get(SERVICEACCOUNTS, "default", "probe"))
        except APIError:
            return False

    await eventually(probe_has_default)
    names = [sa["metadata"]["name"] for sa in (await client.list(SERVICEACCOUNTS, "default"))["items"]]
    assert names == ["default"]

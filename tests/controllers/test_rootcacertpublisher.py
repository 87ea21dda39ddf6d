"""root-ca-cert-publisher: kube-root-ca.crt in every active namespace, kept as published."""

from __future__ import annotations

from typing import Any

from sampan.api.errors import APIError
from sampan.client.interface import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from sampan.client.local import LocalClient
from sampan.controllers.base import ControllerOptions
from sampan.controllers.rootcacertpublisher import CONFIGMAP_NAME, DESCRIPTION, DESCRIPTION_ANNOTATION
from tests.controllers.conftest import StartControllers, eventually

CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def _options() -> ControllerOptions:
    opts = ControllerOptions()
    opts.extra["ca_pem"] = CA.encode()
    return opts


async def _published(client: LocalClient, ns: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        try:
            cm = await client.get(CONFIGMAPS, CONFIGMAP_NAME, ns)
        except APIError:
            return None
        ok = cm.get("data") == {"ca.crt": CA} and cm["metadata"]["annotations"].get(DESCRIPTION_ANNOTATION)
        return cm if ok else None

    return await eventually(check)


async def test_published_in_existing_and_new_namespaces(
    client: LocalClient, start_controllers: StartControllers
) -> None:
    await start_controllers("root-ca-cert-publisher", options=_options())
    cm = await _published(client, "default")
    assert cm["metadata"]["annotations"][DESCRIPTION_ANNOTATION] == DESCRIPTION
    await client.create(NAMESPACES, {"metadata": {"name": "team-a"}})
    await _published(client, "team-a")


async def test_deleted_or_edited_configmap_is_restored(
    client: LocalClient, start_controllers: StartControllers
) -> None:
    await start_controllers("root-ca-cert-publisher", options=_options())
    first = await _published(client, "default")
    await client.delete(CONFIGMAPS, CONFIGMAP_NAME, "default")
    again = await _published(client, "default")
    assert again["metadata"]["uid"] != first["metadata"]["uid"]

    edited = {**again, "data": {"ca.crt": "tampered", "extra": "x"}}
    edited["metadata"] = {**again["metadata"], "annotations": {"team": "a"}}
    await client.update(CONFIGMAPS, edited)
    fixed = await _published(client, "default")
    assert fixed["metadata"]["uid"] == again["metadata"]["uid"]
    assert fixed["metadata"]["annotations"]["team"] == "a"  # other annotations stay


async def test_other_configmaps_are_left_alone(client: LocalClient, start_controllers: StartControllers) -> None:
    await start_controllers("root-ca-cert-publisher", options=_options())
    await client.create(CONFIGMAPS, {"metadata": {"name": "mine"}, "data": {"ca.crt": "other"}}, "default")
    await _published(client, "default")
    mine = await client.get(CONFIGMAPS, "mine", "default")
    assert mine["data"] == {"ca.crt": "other"}


async def test_nothing_published_without_a_ca(client: LocalClient, start_controllers: StartControllers) -> None:
    # A server without PKI: the publisher has nothing to publish (and must not publish junk).
    await start_controllers("root-ca-cert-publisher", "serviceaccount")

    async def account_made() -> bool:
        return bool((await client.list(SERVICEACCOUNTS, "default"))["items"])

    await eventually(account_made)  # the controllers have run through the namespace
    items = (await client.list(CONFIGMAPS, "default"))["items"]
    assert [cm["metadata"]["name"] for cm in items] == []

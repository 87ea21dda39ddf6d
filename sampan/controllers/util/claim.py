"""Adoption and orphaning (upstream's ControllerRefManager): a controller owns the objects
its selector matches; it adopts matching orphans and releases owned objects that stopped
matching. Adoption first re-reads the owner, so a deleted or recreated owner adopts nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sampan.api.selectors import LabelSelector, SelectorError, label_selector_from_dict
from sampan.client.informer import by_controller_uid
from sampan.client.interface import Client, ResourceRef, is_not_found
from sampan.controllers.util.pods import controller_ref, is_terminating

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _controller(obj: Obj) -> Obj | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


class Claimer:
    def __init__(
        self,
        client: Client,
        resource: ResourceRef,
        owner: Obj,
        owner_resource: ResourceRef,
        selector: LabelSelector,
        matches: Callable[[Obj], bool] | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.owner = owner
        self.owner_resource = owner_resource
        self.selector = selector
        # An extra filter beyond labels (e.g. StatefulSet pods must carry its name and an ordinal).
        self.matches = matches or (lambda _obj: True)
        self._can_adopt: bool | None = None

    async def can_adopt(self) -> bool:
        if self._can_adopt is None:
            meta = self.owner["metadata"]
            try:
                fresh = await self.client.get(self.owner_resource, meta["name"], meta.get("namespace"))
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                fresh = None
            self._can_adopt = bool(
                fresh and fresh["metadata"].get("uid") == meta.get("uid") and not is_terminating(fresh)
            )
        return self._can_adopt

    async def claim(self, objs: list[Obj]) -> list[Obj]:
        """The objects this owner controls after adopting and releasing."""
        claimed: list[Obj] = []
        owner_uid = self.owner["metadata"]["uid"]
        owner_deleting = is_terminating(self.owner)
        for obj in objs:
            ref = _controller(obj)
            fits = self.selector.matches(obj.get("metadata", {}).get("labels")) and self.matches(obj)
            if ref is not None:
                if ref.get("uid") != owner_uid:
                    continue
                if fits:
                    claimed.append(obj)
                elif not owner_deleting:
                    await self._release(obj)
                continue
            if owner_deleting or not fits or is_terminating(obj):
                continue
            if not await self.can_adopt():
                continue
            adopted = await self._adopt(obj)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _adopt(self, obj: Obj) -> Obj | None:
        meta = obj["metadata"]
        patch = {"metadata": {"ownerReferences": [controller_ref(self.owner)], "uid": meta["uid"]}}
        try:
            return await self.client.patch(self.resource, meta["name"], patch, "strategic", meta.get("namespace"))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    async def _release(self, obj: Obj) -> None:
        meta = obj["metadata"]
        owner_uid = self.owner["metadata"]["uid"]
        patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": meta["uid"]}}
        try:
            await self.client.patch(self.resource, meta["name"], patch, "strategic", meta.get("namespace"))
        except Exception as exc:
            if not is_not_found(exc):
                raise


CONTROLLER_UID_INDEX = "controller-uid"
ORPHAN_INDEX = "orphans-by-namespace"


def orphan_namespace(obj: Obj) -> list[str]:
    """Objects without a controller, indexed by namespace: the only ones an owner may adopt."""
    if _controller(obj) is not None:
        return []
    ns = obj.get("metadata", {}).get("namespace")
    return [ns] if ns else []


def index_for_claims(informer: Any) -> None:
    """Add the two indexes ``candidates`` reads (idempotent on a shared informer)."""
    informer.add_indexer(CONTROLLER_UID_INDEX, by_controller_uid)
    informer.add_indexer(ORPHAN_INDEX, orphan_namespace)


def candidates(informer: Any, owner: Obj) -> list[Obj]:
    """What an owner may claim: what it controls plus the orphans of its namespace, without
    scanning everything else in the namespace."""
    meta = owner["metadata"]
    return informer.by_index(CONTROLLER_UID_INDEX, meta["uid"]) + informer.by_index(ORPHAN_INDEX, meta.get("namespace") or "")


class SelectorCache:
    """The parsed ``spec.selector`` of each owner by uid: every pod event asks for it, and
    apps/v1 selectors are immutable. A selector that does not parse matches nothing."""

    def __init__(self) -> None:
        self._by_uid: dict[str, LabelSelector] = {}

    def get(self, owner: Obj) -> LabelSelector:
        uid = owner["metadata"].get("uid", "")
        found = self._by_uid.get(uid)
        if found is None:
            try:
                found = label_selector_from_dict((owner.get("spec") or {}).get("selector"))
            except SelectorError:
                found = LabelSelector.match_nothing()
            self._by_uid[uid] = found
        return found

"""An in-memory Client for tests: one global resourceVersion, a bounded history
(older watches get 410), and knobs to end or break watch streams."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from sampan.api.errors import (
    GroupResource,
    already_exists,
    expired,
    not_found,
    status_success,
)
from sampan.client.interface import Obj, ResourceRef, object_key


class FakeClient:
    def __init__(self) -> None:
        self.rv = 0
        self.objects: dict[str, Obj] = {}
        self.history: list[tuple[int, str, Obj]] = []  # (rv, type, obj)
        self.compacted = 0  # watches from an RV below this get 410
        self.watchers: list[asyncio.Queue[Any]] = []
        self.list_calls = 0
        self.watch_calls: list[str] = []
        self.events: list[Obj] = []  # creates/patches of core Events, for recorder tests

    # -- helpers for tests --------------------------------------------------------
    def _emit(self, etype: str, obj: Obj) -> None:
        self.history.append((self.rv, etype, obj))
        for q in self.watchers:
            q.put_nowait((etype, obj))

    def _stamp(self, obj: Obj) -> Obj:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}-{self.rv}")
        return obj

    def put(self, obj: Obj, emit: bool = True) -> Obj:
        """Create or replace; with emit=False the change happens 'while nobody watched'."""
        key = object_key(obj)
        existed = key in self.objects
        obj = self._stamp(obj)
        self.objects[key] = obj
        if emit:
            self._emit("MODIFIED" if existed else "ADDED", obj)
        return obj

    def remove(self, key: str, emit: bool = True) -> None:
        obj = self.objects.pop(key)
        self.rv += 1
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = str(self.rv)
        if emit:
            self._emit("DELETED", final)

    def compact(self) -> None:
        """Forget all history: every open and future watch from an old RV gets 410."""
        self.compacted = self.rv
        self.history.clear()
        for q in self.watchers:
            q.put_nowait(("ERROR", expired("too old resource version").status))

    def end_watches(self) -> None:
        for q in self.watchers:
            q.put_nowait(None)

    def bookmark(self) -> None:
        for q in self.watchers:
            q.put_nowait(("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.rv)}}))

    # -- the Client interface --------------------------------------------------------
    async def get(self, resource: ResourceRef, name: str, namespace: str | None = None) -> Obj:
        key = f"{namespace}/{name}" if namespace else name
        if key not in self.objects:
            raise not_found(GroupResource(resource.group, resource.plural), name)
        return copy.deepcopy(self.objects[key])

    async def list(self, resource: ResourceRef, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj:
        self.list_calls += 1
        keys = sorted(k for k in self.objects if not namespace or k.startswith(namespace + "/"))
        start = int(continue_ or 0)
        page = keys[start : start + limit] if limit else keys[start:]
        meta: Obj = {"resourceVersion": str(self.rv)}
        if limit and start + limit < len(keys):
            meta["continue"] = str(start + limit)
        items = [copy.deepcopy(self.objects[k]) for k in page]
        for item in items:  # built-in lists leave these off
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}

    async def create(self, resource: ResourceRef, obj: Obj, namespace: str | None = None, dry_run: bool = False,
                     field_manager: str | None = None, subresource: str | None = None) -> Obj:
        key = object_key(obj)
        if key in self.objects:
            raise already_exists(GroupResource(resource.group, resource.plural), obj["metadata"]["name"])
        created = self.put(obj)
        if resource.plural == "events":
            self.events.append({"op": "create", "body": copy.deepcopy(obj)})
        return copy.deepcopy(created)

    async def update(self, resource: ResourceRef, obj: Obj, subresource: str | None = None) -> Obj:
        return copy.deepcopy(self.put(obj))

    async def patch(self, resource: ResourceRef, name: str, patch: Any, patch_type: str, namespace: str | None = None,
                    subresource: str | None = None, field_manager: str | None = None, force: bool = False) -> Obj:
        current = await self.get(resource, name, namespace)
        current.update(patch)  # merge patch, one level deep is enough here
        if resource.plural == "events":
            self.events.append({"op": "patch", "name": name, "body": copy.deepcopy(patch)})
        return copy.deepcopy(self.put(current))

    async def delete(self, resource: ResourceRef, name: str, namespace: str | None = None,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> Obj:
        key = f"{namespace}/{name}" if namespace else name
        if key not in self.objects:
            raise not_found(GroupResource(resource.group, resource.plural), name)
        self.remove(key)
        return status_success()

    async def watch(self, resource: ResourceRef, namespace: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, resource_version: str | None = None,
                    allow_bookmarks: bool = True, timeout_seconds: int | None = None) -> AsyncIterator[Obj]:
        self.watch_calls.append(resource_version or "")
        since = int(resource_version or 0)
        q: asyncio.Queue[Any] = asyncio.Queue()
        if since and since < self.compacted:
            q.put_nowait(("ERROR", expired(f"too old resource version: {since} ({self.compacted})").status))
        else:
            for rv, etype, obj in self.history:
                if rv > since:
                    q.put_nowait((etype, obj))
        self.watchers.append(q)
        try:
            while True:
                item = await q.get()
                if item is None:
                    return
                etype, obj = item
                yield {"type": etype, "object": copy.deepcopy(obj)}
                if etype == "ERROR":
                    return
        finally:
            self.watchers.remove(q)

    async def close(self) -> None:
        pass

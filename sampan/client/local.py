"""The in-process transport: the Client interface straight over the server's registry.

Components running inside the server process (controllers, the scheduler) use it to
skip HTTP and JSON while going through the same defaulting, validation and admission
as remote clients. Objects are copied on the way in, so callers may pass cached ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from sampan.api import errors
from sampan.client.interface import (
    PATCH_CONTENT_TYPES,
    Obj,
    PatchType,
    ResourceRef,
    error_from_status,
)
from sampan.registry import subresources
from sampan.registry.options import DeleteOptions, ListOptions, WriteOptions
from sampan.registry.registry import Registry
from sampan.registry.store import ResourceStore, copy_obj

T = TypeVar("T")

DEFAULT_FIELD_MANAGER = "sampan"


class LocalClient:
    def __init__(self, registry: Registry, field_manager: str = DEFAULT_FIELD_MANAGER,
                 max_in_flight_writes: int = 0) -> None:
        """``max_in_flight_writes`` (0: no limit) bounds this client's concurrent writes, so a
        controller fanning out hundreds of creates cannot fill the event loop's queue ahead of
        API clients (what client-side rate limits and API Priority and Fairness do upstream)."""
        self.registry = registry
        self.field_manager = field_manager
        self._write_slots = asyncio.Semaphore(max_in_flight_writes) if max_in_flight_writes > 0 else None

    async def _bounded(self, work: Coroutine[Any, Any, T]) -> T:
        slots = self._write_slots
        if slots is None:
            return await work
        try:
            await slots.acquire()
        except BaseException:
            work.close()  # never started
            raise
        try:
            return await work
        finally:
            slots.release()

    def _store(self, resource: ResourceRef) -> ResourceStore:
        return self.registry.must(resource.group, resource.version, resource.plural)

    def _write_opts(self, dry_run: bool = False, field_manager: str | None = None, force: bool = False) -> WriteOptions:
        return WriteOptions(dry_run=dry_run, field_manager=field_manager or self.field_manager, force=force)

    @staticmethod
    def _ns(resource: ResourceRef, namespace: str | None) -> str:
        return (namespace or "") if resource.namespaced else ""

    async def close(self) -> None:
        pass

    async def get(self, resource: ResourceRef, name: str, namespace: str | None = None) -> Obj:
        return await self._store(resource).get(self._ns(resource, namespace), name)

    async def list(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        opts = ListOptions(
            label_selector=label_selector or "",
            field_selector=field_selector or "",
            limit=limit or 0,
            continue_token=continue_ or "",
            resource_version=resource_version or "",
        )
        return await self._store(resource).list(self._ns(resource, namespace), opts)

    async def create(
        self,
        resource: ResourceRef,
        obj: Obj,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        obj = copy_obj(obj)
        meta = obj.setdefault("metadata", {})
        ns = self._ns(resource, namespace or meta.get("namespace"))
        opts = self._write_opts(dry_run, field_manager)
        rs = self._store(resource)
        if subresource:
            action = self._create_action(rs, resource, ns, meta.get("name", ""), subresource, obj, opts)
            return await self._bounded(action)
        if resource.namespaced:
            meta.setdefault("namespace", ns)
        return await self._bounded(rs.create(ns, obj, opts))

    async def _create_action(
        self, rs: ResourceStore, resource: ResourceRef, ns: str, name: str, subresource: str, body: Obj, opts: WriteOptions
    ) -> Obj:
        if (resource.group, resource.plural) == ("", "pods"):
            if subresource == "binding":
                return await subresources.bind_pod(rs, ns, name, body, opts)
            if subresource == "eviction":
                return await subresources.evict_pod(rs, ns, name, body, opts)
        gr = errors.GroupResource(resource.group, f"{resource.plural}/{subresource}")
        raise errors.method_not_supported(gr, "create")

    async def update(self, resource: ResourceRef, obj: Obj, subresource: str | None = None) -> Obj:
        obj = copy_obj(obj)
        meta = obj.get("metadata") or {}
        ns, name = self._ns(resource, meta.get("namespace")), meta["name"]
        rs, opts = self._store(resource), self._write_opts()
        if subresource == "scale":
            return await self._bounded(subresources.update_scale(rs, ns, name, obj, opts))
        if subresource == "finalize":
            return await self._bounded(subresources.finalize_namespace(rs, name, obj, opts))
        return await self._bounded(rs.update(ns, name, obj, opts, subresource or ""))

    async def patch(
        self,
        resource: ResourceRef,
        name: str,
        patch: Any,
        patch_type: PatchType,
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
    ) -> Obj:
        content_type = PATCH_CONTENT_TYPES[patch_type]
        rs, ns = self._store(resource), self._ns(resource, namespace)
        opts = self._write_opts(False, field_manager, force)
        patch = copy_obj(patch) if isinstance(patch, (dict, list)) else patch
        if subresource == "scale":
            return await self._bounded(subresources.patch_scale(rs, ns, name, content_type, patch, opts))
        result, _created = await self._bounded(rs.patch(ns, name, content_type, patch, opts, subresource or ""))
        return result

    async def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        pre = preconditions or {}
        opts = DeleteOptions(
            grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            precondition_uid=pre.get("uid"),
            precondition_resource_version=pre.get("resourceVersion"),
        )
        deleting = self._store(resource).delete(self._ns(resource, namespace), name, opts)
        result, _removed = await self._bounded(deleting)
        return result

    async def watch(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[Obj]:
        # timeout_seconds only matters for HTTP connections; an in-process watch just runs.
        opts = ListOptions(
            label_selector=label_selector or "",
            field_selector=field_selector or "",
            resource_version=resource_version or "",
            allow_bookmarks=allow_bookmarks,
        )
        events = await self._store(resource).watch(self._ns(resource, namespace), opts)
        try:
            async for etype, obj in events:
                if etype == "ERROR":
                    raise error_from_status(obj, int(obj.get("code") or 500))
                yield {"type": etype, "object": obj}
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

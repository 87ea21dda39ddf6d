"""Informers: list then watch one collection into a local, indexed cache.

An informer lists (paginated), then watches from the list's resourceVersion with
bookmarks so it can resume cheaply. When the watch ends it resumes from the last
resourceVersion it saw; when the server says that version is gone (410) it lists
again and turns the difference with its cache into add/update/delete notifications,
so objects deleted while it was not watching are reported too.

Handlers are plain functions called in the informer's task; they must only enqueue
keys (see workqueue.py). Cached objects are shared: never mutate them. An optional
``transform`` rewrites each object before it is cached or handed to handlers (the
server's components use compact.py's, which shares equal parts between objects).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sampan.client.interface import (
    Client,
    Obj,
    ResourceRef,
    error_from_status,
    is_expired,
    object_key,
)
from sampan.client.wakeup import wait_event

log = logging.getLogger(__name__)

IndexFunc = Callable[[Obj], Iterable[str]]
AddFunc = Callable[[Obj], None]
UpdateFunc = Callable[[Obj, Obj], None]
DeleteFunc = Callable[[Obj], None]
Transform = Callable[[Obj], Obj]

NAMESPACE_INDEX = "namespace"


# -- index functions -----------------------------------------------------------------


def by_namespace(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def by_node_name(obj: Obj) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def by_owner_uid(obj: Obj) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if ref.get("uid")]


def by_controller_uid(obj: Obj) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if ref.get("controller") and ref.get("uid")]


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


# -- the cache -----------------------------------------------------------------------


class Cache:
    """Objects by key plus any number of secondary indexes (name -> value -> keys)."""

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        self._indexers[name] = fn
        index: dict[str, set[str]] = {}
        self._indices[name] = index
        for key, obj in self._items.items():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indices[name].get(value, ())
        return [self._items[k] for k in sorted(keys)]

    def index_keys(self, name: str, value: str) -> list[str]:
        return sorted(self._indices[name].get(value, ()))

    def put(self, key: str, obj: Obj) -> Obj | None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(obj):
                index.setdefault(value, set()).add(key)
        return old

    def pop(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def replace(self, items: dict[str, Obj]) -> dict[str, Obj]:
        """Swap in a fresh listing; returns the previous contents."""
        old = self._items
        self._items = {}
        for name in self._indices:
            self._indices[name] = {}
        for key, obj in items.items():
            self.put(key, obj)
        return old


# -- the informer --------------------------------------------------------------------


@dataclass
class Handler:
    on_add: AddFunc | None = None
    on_update: UpdateFunc | None = None
    on_delete: DeleteFunc | None = None


class _Backoff:
    def __init__(self, initial: float = 0.8, cap: float = 30.0) -> None:
        self.initial, self.cap, self.current = initial, cap, initial

    def next(self) -> float:
        delay = self.current * (1 + random.random() * 0.2)
        self.current = min(self.current * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.current = self.initial


class Informer:
    def __init__(
        self,
        client: Client,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        page_size: int = 500,
        transform: Transform | None = None,
    ) -> None:
        self.client = client
        self.transform = transform
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.cache = Cache()
        self.cache.add_indexer(NAMESPACE_INDEX, by_namespace)
        self.last_resource_version = ""
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- reading the cache ---------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        return self.cache.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> Obj | None:
        return self.cache.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[Obj]:
        if namespace:
            return self.cache.by_index(NAMESPACE_INDEX, namespace)
        return self.cache.list()

    def keys(self) -> list[str]:
        return self.cache.keys()

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        self.cache.add_indexer(name, fn)

    def by_index(self, name: str, value: str) -> list[Obj]:
        return self.cache.by_index(name, value)

    # -- handlers --------------------------------------------------------------------
    def add_handler(
        self, on_add: AddFunc | None = None, on_update: UpdateFunc | None = None, on_delete: DeleteFunc | None = None
    ) -> Handler:
        """Register callbacks; a late handler is first told about what is already cached."""
        handler = Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if on_add is not None:
            for obj in self.cache.list():
                self._call(on_add, obj)
        return handler

    def remove_handler(self, handler: Handler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    def _call(self, fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s informer handler failed", self.resource)

    def _added(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _updated(self, old: Obj, new: Obj) -> None:
        for h in list(self._handlers):
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _deleted(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # -- lifecycle ---------------------------------------------------------------------
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        if timeout is None:
            await self._synced.wait()
            return True
        return await wait_event(self._synced, timeout)

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def start(self) -> None:
        if self.running:
            return
        self._tasks = [asyncio.create_task(self._run(), name=f"informer {self.resource}")]
        if self.resync_period:
            self._tasks.append(asyncio.create_task(self._resync_loop(self.resync_period)))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        backoff = _Backoff()
        need_list = True
        loop = asyncio.get_running_loop()
        while True:
            listed_at: float | None = None
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list, listed_at = False, loop.time()
                if await self._watch():
                    backoff.reset()
                    continue
                # A watch that ended at once without a single event: don't spin.
                await asyncio.sleep(backoff.next())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: back off and retry
                if is_expired(exc):
                    log.info("%s: resourceVersion %s expired, listing again", self.resource, self.last_resource_version)
                    need_list = True
                    if listed_at is not None and loop.time() - listed_at < 1.0:
                        # Expired straight after a fresh list: don't hammer the server with lists.
                        await asyncio.sleep(backoff.next())
                    continue
                log.warning("%s informer: %s: %s", self.resource, type(exc).__name__, exc)
                await asyncio.sleep(backoff.next())

    async def _list_all(self) -> tuple[dict[str, Obj], str]:
        items: dict[str, Obj] = {}
        continue_: str | None = None
        limit: int | None = self.page_size or None
        while True:
            try:
                page = await self.client.list(
                    self.resource, self.namespace, self.label_selector, self.field_selector, limit, continue_
                )
            except Exception as exc:
                if not (continue_ and is_expired(exc)):
                    raise
                # The continue token outlived the server's history: one unpaginated list.
                items, continue_, limit = {}, None, None
                continue
            kind = str(page.get("kind") or "").removesuffix("List")
            api_version = page.get("apiVersion")
            for obj in page.get("items") or []:
                # Built-in lists leave kind/apiVersion off their items; cached objects look like GETs.
                if kind and "kind" not in obj:
                    obj["kind"] = kind
                if api_version and "apiVersion" not in obj:
                    obj["apiVersion"] = api_version
                items[object_key(obj)] = obj if self.transform is None else self.transform(obj)
            meta = page.get("metadata") or {}
            continue_ = meta.get("continue") or None
            if not continue_:
                return items, str(meta.get("resourceVersion") or "")

    async def _list_and_replace(self) -> None:
        items, rv = await self._list_all()
        old = self.cache.replace(items)
        self.last_resource_version = rv
        for key, obj in old.items():
            if key not in items:
                self._deleted(obj)  # vanished while we were not watching
        for key, obj in items.items():
            before = old.get(key)
            if before is None:
                self._added(obj)
            elif resource_version(before) != resource_version(obj):
                self._updated(before, obj)
        self._synced.set()

    async def _watch(self) -> bool:
        """One watch from the last resourceVersion; True if it delivered anything."""
        got_any = False
        events = self.client.watch(
            self.resource,
            self.namespace,
            self.label_selector,
            self.field_selector,
            resource_version=self.last_resource_version,
            allow_bookmarks=True,
            # Spread re-watches out like upstream reflectors do (5-10 minutes).
            timeout_seconds=random.randint(300, 600),
        )
        try:
            async for event in events:
                got_any = True
                self._handle(event)
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        return got_any

    def _handle(self, event: Obj) -> None:
        etype, obj = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            raise error_from_status(obj, int(obj.get("code") or 500))
        rv = resource_version(obj)
        if etype == "BOOKMARK":
            if rv:
                self.last_resource_version = rv
            return
        key = object_key(obj)
        if self.transform is not None:
            obj = self.transform(obj)
        if etype in ("ADDED", "MODIFIED"):
            old = self.cache.put(key, obj)
            if old is None:
                self._added(obj)
            else:
                self._updated(old, obj)
        elif etype == "DELETED":
            self.cache.pop(key)
            self._deleted(obj)
        else:
            log.warning("%s informer: unknown event type %r", self.resource, etype)
        if rv:
            self.last_resource_version = rv

    async def _resync_loop(self, period: float) -> None:
        """Periodically replay the cache as updates so controllers re-check everything."""
        while True:
            await asyncio.sleep(period)
            if self.has_synced():
                for obj in self.cache.list():
                    self._updated(obj, obj)


class InformerFactory:
    """One shared informer per (resource, namespace, selectors) for all controllers."""

    def __init__(
        self,
        client: Client,
        resync_period: float | None = None,
        namespace: str | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.client = client
        self.resync_period = resync_period
        self.namespace = namespace
        self.transform = transform
        self._informers: dict[tuple[Any, ...], Informer] = {}
        self._started = False

    def informer(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Informer:
        namespace = namespace or self.namespace
        key = (resource, namespace if resource.namespaced else None, label_selector or "", field_selector or "")
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client, resource, namespace, label_selector, field_selector, self.resync_period,
                transform=self.transform,
            )
            self._informers[key] = informer
            if self._started:
                informer.start()
        return informer

    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer asked for so far, and any asked for later."""
        self._started = True
        for informer in self._informers.values():
            informer.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(*(i.wait_for_sync(timeout) for i in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        self._started = False
        await asyncio.gather(*(i.stop() for i in self._informers.values()))

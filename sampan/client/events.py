"""An event recorder: components report what they did as core/v1 Events.

``record`` never blocks and never fails the caller: events go through a bounded queue
to one background task that writes them. A repeat of an event already written (same
object, type, reason, message and source) patches the existing Event's ``count`` and
``lastTimestamp`` instead of creating another, as upstream's recorder does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sampan.client.interface import EVENTS, Client, Obj, is_not_found

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


_stamp: list[Any] = [0, ""]


def _now() -> str:
    # Busy components record many events a second: format each second once.
    second = int(time.time())
    if second != _stamp[0]:
        _stamp[:] = [second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    return _stamp[1]


def object_reference(obj: Obj) -> Obj:
    """The involvedObject for an object (or an object reference passed as is)."""
    if "metadata" not in obj:
        return dict(obj)
    meta = obj["metadata"]
    ref = {
        "kind": obj.get("kind", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    return {k: v for k, v in ref.items() if v}


@dataclass
class _Written:
    name: str
    namespace: str
    count: int


class EventRecorder:
    def __init__(
        self,
        client: Client,
        component: str,
        host: str = "",
        instance: str = "",
        cache_size: int = 4096,
        queue_size: int = 1000,
        writers: int = 1,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.instance = instance or (f"{component}-{host}" if host else component)
        self._written: OrderedDict[tuple[str, ...], _Written] = OrderedDict()
        self._cache_size = cache_size
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, str]] = asyncio.Queue(queue_size)
        # More than one writer lets a busy component's events share store commits; a repeat
        # racing its first write may then become a second Event instead of a count.
        self._writers = max(1, writers)
        self._tasks: list[asyncio.Task[None]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Record an event about ``obj``; returns at once."""
        if type_ not in (NORMAL, WARNING):
            log.warning("event type %r is neither Normal nor Warning", type_)
        try:
            self._queue.put_nowait((object_reference(obj), type_, reason, message[:1024], _now()))
        except asyncio.QueueFull:
            log.warning("event queue full, dropping %s %s: %s", type_, reason, message)
            return
        self._tasks = [t for t in self._tasks if not t.done()]
        if len(self._tasks) < min(self._writers, self._queue.qsize()):
            self._tasks.append(asyncio.get_running_loop().create_task(self._run(), name=f"events {self.component}"))

    def eventf(self, obj: Obj, type_: str, reason: str, fmt: str, *args: Any) -> None:
        self.event(obj, type_, reason, fmt % args if args else fmt)

    async def flush(self) -> None:
        """Wait until every recorded event has been written (tests, shutdown)."""
        await self._queue.join()

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            ref, type_, reason, message, stamp = await self._queue.get()
            try:
                await self._write(ref, type_, reason, message, stamp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - events are best effort
                log.warning("could not write event %s %s for %s: %s", type_, reason, ref.get("name"), exc)
            finally:
                self._queue.task_done()

    async def _write(self, ref: Obj, type_: str, reason: str, message: str, stamp: str) -> None:
        # Events live in the object's namespace; cluster objects' events go to "default".
        namespace = ref.get("namespace") or "default"
        key = (
            self.component, self.host, ref.get("kind", ""), namespace, ref.get("name", ""),
            ref.get("uid", ""), ref.get("apiVersion", ""), type_, reason, message,
        )
        seen = self._written.get(key)
        if seen is not None:
            self._written.move_to_end(key)
            patch = {"count": seen.count + 1, "lastTimestamp": stamp}
            try:
                await self.client.patch(EVENTS, seen.name, patch, "merge", namespace=seen.namespace)
                seen.count += 1
                return
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                del self._written[key]  # expired or removed: start a new one
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.get('name', 'unknown')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {k: v for k, v in (("component", self.component), ("host", self.host)) if v},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        created = await self.client.create(EVENTS, event, namespace=namespace)
        self._written[key] = _Written(created["metadata"]["name"], namespace, 1)
        if len(self._written) > self._cache_size:
            self._written.popitem(last=False)

"""The scheduling queue: activeQ, backoffQ and the unschedulable pods.

- activeQ: pods ready to try, highest priority first, then oldest first.
- backoffQ: pods that failed recently and wait out a backoff (initial doubling to max).
- unschedulable: pods no node fits; a cluster event that could change that (a node added
  or updated, a pod deleted, ...) moves them back, to backoffQ while still backing off.

A pod that failed while a move event arrived during its own attempt goes to backoffQ,
not to the unschedulable set, so the event is not lost (upstream's moveRequestCycle).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sampan.scheduler.types import Obj, PodInfo


@dataclass
class QueuedPod:
    key: str
    pod: Obj
    priority: int = 0
    timestamp: float = 0.0  # when it (re-)entered the queue: orders equal priorities
    attempts: int = 0
    backoff_until: float = 0.0
    unschedulable_plugins: set[str] = field(default_factory=set)
    info: PodInfo | None = None  # parsed once per pod version

    def pod_info(self) -> PodInfo:
        if self.info is None or self.info.pod is not self.pod:
            self.info = PodInfo(self.pod)
        return self.info


def _priority(pod: Obj) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


class SchedulingQueue:
    def __init__(
        self,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_unschedulable: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self.clock = clock
        self._seq = itertools.count()
        self._active: dict[str, QueuedPod] = {}
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._backoff: dict[str, QueuedPod] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self.unschedulable: dict[str, QueuedPod] = {}
        self.in_flight: dict[str, QueuedPod] = {}
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self._closed = False

    # -- sizes (metrics, tests) ------------------------------------------------------
    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self.unschedulable)

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def backoff_count(self) -> int:
        return len(self._backoff)

    def __contains__(self, key: str) -> bool:
        return key in self._active or key in self._backoff or key in self.unschedulable or key in self.in_flight

    # -- internal moves ---------------------------------------------------------------
    def _push_active(self, qp: QueuedPod) -> None:
        self._active[qp.key] = qp
        heapq.heappush(self._active_heap, (-qp.priority, qp.timestamp, next(self._seq), qp.key))
        self._wakeup.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        self._backoff[qp.key] = qp
        heapq.heappush(self._backoff_heap, (qp.backoff_until, next(self._seq), qp.key))

    def _backoff_duration(self, attempts: int) -> float:
        return min(self.initial_backoff * 2 ** max(attempts - 1, 0), self.max_backoff)

    def _requeue(self, qp: QueuedPod) -> None:
        """Back to activeQ, or backoffQ while the pod still has to wait."""
        qp.timestamp = self.clock()
        if qp.backoff_until > qp.timestamp:
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    def _remove(self, key: str) -> QueuedPod | None:
        # Heap entries of removed pods stay behind and are skipped when popped.
        for where in (self._active, self._backoff, self.unschedulable):
            qp = where.pop(key, None)
            if qp is not None:
                return qp
        return None

    # -- informer events -------------------------------------------------------------
    def add(self, pod: Obj) -> None:
        key = _key(pod)
        if key in self:
            self.update(pod)
            return
        self._push_active(QueuedPod(key, pod, _priority(pod), self.clock()))

    def update(self, pod: Obj) -> None:
        key = _key(pod)
        qp = self.in_flight.get(key)
        if qp is not None:
            qp.pod = pod
            return
        if key in self._active:
            qp = self._active[key]
            if _priority(pod) != qp.priority:  # re-sort under the new priority
                del self._active[key]
                qp.pod, qp.priority = pod, _priority(pod)
                self._push_active(qp)
            qp.pod = pod
            return
        if key in self._backoff:
            self._backoff[key].pod = pod
            return
        qp = self.unschedulable.get(key)
        if qp is None:
            self._push_active(QueuedPod(key, pod, _priority(pod), self.clock()))
            return
        changed = _spec_or_labels_changed(qp.pod, pod)
        qp.pod, qp.priority = pod, _priority(pod)
        if changed:
            # An unschedulable pod whose spec or labels changed may fit now: try it again.
            del self.unschedulable[key]
            self._requeue(qp)

    def delete(self, key: str) -> None:
        self._remove(key)
        self.in_flight.pop(key, None)

    # -- the scheduling loop ---------------------------------------------------------
    def flush_backoff(self) -> None:
        now = self.clock()
        heap = self._backoff_heap
        while heap and heap[0][0] <= now:
            _until, _seq, key = heapq.heappop(heap)
            qp = self._backoff.get(key)
            if qp is not None and qp.backoff_until <= now:
                del self._backoff[key]
                self._push_active(qp)

    def flush_unschedulable(self) -> None:
        """Retry pods that waited too long for an event that never came."""
        now = self.clock()
        for key, qp in list(self.unschedulable.items()):
            if now - qp.timestamp >= self.max_unschedulable:
                del self.unschedulable[key]
                self._requeue(qp)

    def pop_nowait(self) -> QueuedPod | None:
        heap = self._active_heap
        while heap:
            _prio, _ts, _seq, key = heapq.heappop(heap)
            qp = self._active.pop(key, None)
            if qp is not None:
                qp.attempts += 1
                self.in_flight[key] = qp
                self.scheduling_cycle += 1
                return qp
        self._wakeup.clear()
        return None

    async def pop(self) -> QueuedPod:
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            if self._closed:
                raise asyncio.CancelledError
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """The pod was bound (or given up on): it leaves the queue."""
        self.in_flight.pop(key, None)

    def add_unschedulable(self, qp: QueuedPod, cycle: int, plugins: set[str]) -> None:
        """After a failed attempt in ``cycle``; dropped if the pod went away meanwhile."""
        if self.in_flight.pop(qp.key, None) is None:
            return
        qp.unschedulable_plugins = plugins
        qp.timestamp = self.clock()
        qp.backoff_until = qp.timestamp + self._backoff_duration(qp.attempts)
        if self.move_request_cycle >= cycle or not plugins:
            self._push_backoff(qp)
        else:
            self.unschedulable[qp.key] = qp

    def requeue_after_error(self, qp: QueuedPod) -> None:
        """A transient error (binding failed, API error): retry after the backoff."""
        if self.in_flight.pop(qp.key, None) is None:
            return
        qp.timestamp = self.clock()
        qp.backoff_until = qp.timestamp + self._backoff_duration(qp.attempts)
        self._push_backoff(qp)

    def move_all(self, plugins: set[str] | None = None) -> int:
        """A cluster event: pods rejected by any of ``plugins`` (None: all) may fit now."""
        self.move_request_cycle = self.scheduling_cycle
        moved = 0
        for key, qp in list(self.unschedulable.items()):
            if plugins is None or qp.unschedulable_plugins & plugins:
                del self.unschedulable[key]
                self._requeue(qp)
                moved += 1
        return moved

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()


def _key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _spec_or_labels_changed(old: Obj, new: Obj) -> bool:
    return old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("labels") != (
        new.get("metadata") or {}
    ).get("labels")

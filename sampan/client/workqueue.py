"""A de-duplicating, rate-limited work queue for controllers.

The same semantics as upstream's workqueue:
- a key waits in the queue at most once, however often it is added;
- a key being processed is never handed to a second worker; if it is added meanwhile
  it is queued again when the worker calls ``done``;
- ``add_rate_limited`` delays a key by per-key exponential backoff (5 ms doubling up to
  1000 s) combined with an overall token bucket (10/s, burst 100); ``forget`` resets it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


class ShutDown(Exception):
    """``get`` on a queue that is shut down and empty."""


# -- rate limiters -----------------------------------------------------------------


class RateLimiter(Protocol):
    def when(self, key: Any) -> float:
        """Seconds to wait before the key may be processed again (counts a failure)."""
        ...

    def forget(self, key: Any) -> None: ...

    def num_requeues(self, key: Any) -> int: ...


class ItemExponentialFailureRateLimiter:
    """base * 2**failures per key, capped."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Any, int] = {}

    def when(self, key: Any) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        if exp > 64:  # 2**exp would overflow any sane cap anyway
            return self.max_delay
        return min(self.base_delay * (2**exp), self.max_delay)

    def forget(self, key: Any) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Any) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter:
    """A token bucket shared by all keys; reservations may drive it negative, which
    becomes the wait for whoever reserved."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock = time.monotonic) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, key: Any) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: Any) -> None:
        pass

    def num_requeues(self, key: Any) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest wait any of the limiters asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, key: Any) -> float:
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key: Any) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: Any) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock = time.monotonic) -> RateLimiter:
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100, clock))


# -- the queue ---------------------------------------------------------------------


class WorkQueue(Generic[K]):
    """Create and use it inside one event loop; handlers call ``add`` synchronously."""

    def __init__(self, rate_limiter: RateLimiter | None = None, name: str = "") -> None:
        self.name = name
        self.rate_limiter = rate_limiter or default_controller_rate_limiter()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # waiting to be processed (queued or re-added while processing)
        self._processing: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._delayed: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # ``done`` puts it back
        self._queue.append(key)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> K:
        """The next key; the caller must call ``done(key)`` when finished with it."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # We may have been woken for a key just before being cancelled: pass it on.
                if waiter.done() and not waiter.cancelled() and self._queue:
                    self._wake_one()
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Add the key once ``delay`` seconds have passed; the earliest pending time wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= ready:
                return
            pending[1].cancel()
        self._delayed[key] = (ready, loop.call_at(ready, self._fire, key))

    def _fire(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Stop tracking failures for the key (call it after a successful reconcile)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)

    def shutdown(self) -> None:
        """Stop accepting keys; waiting ``get`` calls raise ShutDown once the queue is empty."""
        self._shutting_down = True
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


Reconcile = Callable[[Any], Awaitable[Any] | Any]


async def process_next(queue: WorkQueue[Any], reconcile: Reconcile) -> None:
    """Take one key and reconcile it. Success forgets the backoff; an exception requeues
    with backoff; a number returned asks for another pass after that many seconds."""
    key = await queue.get()
    try:
        result = reconcile(key)
        if inspect.isawaitable(result):
            result = await result
    except asyncio.CancelledError:
        queue.add(key)  # not finished: let the next run pick it up
        raise
    except Exception:
        log.exception("reconcile %r failed (queue %s, retry %d)", key, queue.name, queue.num_requeues(key) + 1)
        queue.add_rate_limited(key)
    else:
        queue.forget(key)
        if isinstance(result, (int, float)) and not isinstance(result, bool) and result > 0:
            queue.add_after(key, float(result))
    finally:
        queue.done(key)


async def run_workers(queue: WorkQueue[Any], reconcile: Reconcile, n: int = 1) -> None:
    """Run ``n`` workers until the queue is shut down (or this task is cancelled)."""

    async def worker() -> None:
        while True:
            try:
                await process_next(queue, reconcile)
            except ShutDown:
                return

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, n)):
            group.create_task(worker())

import asyncio

import pytest

from sampan.client.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
    run_workers,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_add_deduplicates() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a", "b"):
        q.add(key)
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_key_in_processing_is_not_handed_out_twice_and_comes_back() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed while being processed
    assert len(q) == 0
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not second.done()  # not given to another worker
    q.done(key)
    assert await asyncio.wait_for(second, 1) == "a"
    q.done("a")
    assert len(q) == 0


async def test_done_without_readd_drops_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.done(await q.get())
    q.add("a")
    assert len(q) == 1


async def test_get_waits_for_add_and_shutdown_wakes() -> None:
    q: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")
    assert await asyncio.wait_for(waiter, 1) == "x"
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)
    q.add("ignored")
    assert len(q) == 0


async def test_cancelled_getter_passes_wakeup_on() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")
    first.cancel()  # woken, but cancelled before it ran
    await asyncio.gather(first, return_exceptions=True)
    assert await asyncio.wait_for(second, 1) == "a"


async def test_add_after_orders_by_time_and_keeps_earliest() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("late", 0.08)
    q.add_after("early", 0.02)
    q.add_after("late", 0.5)  # later than pending: ignored
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "early"
    assert await asyncio.wait_for(q.get(), 1) == "late"
    q.add_after("now", 0)
    assert len(q) == 1


async def test_shutdown_cancels_delayed() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.01)
    q.shutdown()
    await asyncio.sleep(0.03)
    assert len(q) == 0


def test_exponential_backoff() -> None:
    rl = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    delays = [rl.when("k") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert rl.num_requeues("k") == 5
    assert rl.when("other") == pytest.approx(0.005)
    for _ in range(100):
        last = rl.when("k")
    assert last == 1000.0
    rl.forget("k")
    assert rl.num_requeues("k") == 0
    assert rl.when("k") == pytest.approx(0.005)


def test_token_bucket_with_fake_time() -> None:
    clock = FakeClock()
    rl = BucketRateLimiter(qps=10, burst=3, clock=clock)
    assert [rl.when(i) for i in range(3)] == [0, 0, 0]
    assert rl.when(3) == pytest.approx(0.1)
    assert rl.when(4) == pytest.approx(0.2)
    clock.now = 10.0  # refills up to the burst only
    assert [rl.when(i) for i in range(3)] == [0, 0, 0]
    assert rl.when(9) == pytest.approx(0.1)


def test_default_limiter_is_max_of_both() -> None:
    clock = FakeClock()
    rl = default_controller_rate_limiter(clock)
    assert isinstance(rl, MaxOfRateLimiter)
    assert rl.when("a") == pytest.approx(0.005)
    for i in range(200):
        rl.when(f"k{i}")  # drain the bucket
    assert rl.when("b") > 1.0  # now the bucket dominates the 5 ms


async def test_add_rate_limited_and_forget() -> None:
    q: WorkQueue[str] = WorkQueue(ItemExponentialFailureRateLimiter(0.01, 1.0))
    q.add_rate_limited("a")
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert q.num_requeues("a") == 1
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_run_workers_retries_with_backoff_and_forgets() -> None:
    q: WorkQueue[str] = WorkQueue(ItemExponentialFailureRateLimiter(0.001, 0.01))
    attempts: dict[str, int] = {}
    done = asyncio.Event()

    async def reconcile(key: str) -> None:
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] < 3:
            raise RuntimeError("not yet")
        done.set()

    q.add("a")
    runner = asyncio.create_task(run_workers(q, reconcile, 2))
    await asyncio.wait_for(done.wait(), 2)
    await asyncio.sleep(0.01)
    assert attempts == {"a": 3}
    assert q.num_requeues("a") == 0
    q.shutdown()
    await asyncio.wait_for(runner, 1)


async def test_run_workers_never_runs_one_key_concurrently() -> None:
    q: WorkQueue[str] = WorkQueue()
    running: set[str] = set()
    overlaps = 0
    calls = 0

    async def reconcile(key: str) -> None:
        nonlocal overlaps, calls
        calls += 1
        if key in running:
            overlaps += 1
        running.add(key)
        await asyncio.sleep(0.005)
        running.discard(key)

    runner = asyncio.create_task(run_workers(q, reconcile, 4))
    for _ in range(20):
        for key in ("a", "b"):
            q.add(key)
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.05)
    q.shutdown()
    await asyncio.wait_for(runner, 1)
    assert overlaps == 0
    assert 2 <= calls < 40  # coalesced


async def test_reconcile_returning_seconds_requeues_after() -> None:
    q: WorkQueue[str] = WorkQueue()
    seen = 0
    twice = asyncio.Event()

    def reconcile(key: str) -> float | None:  # sync reconcile works too
        nonlocal seen
        seen += 1
        if seen == 2:
            twice.set()
        return 0.01 if seen == 1 else None

    q.add("a")
    runner = asyncio.create_task(run_workers(q, reconcile))
    await asyncio.wait_for(twice.wait(), 1)
    q.shutdown()
    await asyncio.wait_for(runner, 1)

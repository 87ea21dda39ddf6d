"""The scheduling queue: ordering, backoff, unschedulable pods and cluster events."""

from __future__ import annotations

from sampan.scheduler.queue import QueuedPod, SchedulingQueue

from tests.scheduler.conftest import pod_obj


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def queue(clock: Clock) -> SchedulingQueue:
    return SchedulingQueue(initial_backoff=1.0, max_backoff=10.0, max_unschedulable=300.0, clock=clock)


def attempt(q: SchedulingQueue, name: str = "p") -> QueuedPod:
    """Adds a pod and pops it again, as the start of a scheduling attempt does."""
    q.add(pod_obj(name))
    qp = q.pop_nowait()
    assert qp is not None
    return qp


def rejected(q: SchedulingQueue, plugin: str, name: str = "p") -> None:
    """A pod whose scheduling attempt ``plugin`` turned down: it waits as unschedulable."""
    q.add_unschedulable(attempt(q, name), q.scheduling_cycle, {plugin})


def test_priority_then_age() -> None:
    clock = Clock()
    q = queue(clock)
    for name, prio in (("old-low", 0), ("high", 100), ("new-low", 0)):
        q.add(pod_obj(name, priority=prio))
        clock.now += 1
    popped = [q.pop_nowait() for _ in range(3)]
    assert [p.key for p in popped if p] == ["default/high", "default/old-low", "default/new-low"]
    assert q.pop_nowait() is None


def test_unschedulable_waits_for_an_event_then_backs_off() -> None:
    clock = Clock()
    q = queue(clock)
    rejected(q, "NodeResourcesFit")
    assert "default/p" in q.unschedulable
    clock.now += 60
    q.flush_backoff()
    assert q.pop_nowait() is None  # no event: it stays put
    assert q.move_all() == 1
    assert q.pop_nowait() is not None  # its one-second backoff has long passed


def test_event_during_backoff_goes_to_backoff_queue() -> None:
    clock = Clock()
    q = queue(clock)
    rejected(q, "NodeResourcesFit")
    q.move_all()
    assert q.backoff_count == 1 and q.pop_nowait() is None
    clock.now += 1.0
    q.flush_backoff()
    assert q.pop_nowait() is not None


def test_backoff_doubles_and_is_capped() -> None:
    clock = Clock()
    q = queue(clock)
    q.add(pod_obj("p"))
    waits = []
    for _ in range(6):
        clock.now += 100
        q.flush_backoff()
        qp = q.pop_nowait()
        assert qp is not None
        q.requeue_after_error(qp)
        waits.append(qp.backoff_until - clock.now)
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_event_while_in_flight_is_not_lost() -> None:
    clock = Clock()
    q = queue(clock)
    qp = attempt(q)
    cycle = q.scheduling_cycle
    q.move_all()  # e.g. a node was added while the pod was being scheduled
    q.add_unschedulable(qp, cycle, {"NodeResourcesFit"})
    assert "default/p" not in q.unschedulable and q.backoff_count == 1


def test_move_only_pods_rejected_by_named_plugins() -> None:
    clock = Clock()
    q = queue(clock)
    for name, plugin in (("spread", "PodTopologySpread"), ("cpu", "NodeResourcesFit")):
        rejected(q, plugin, name)
    assert q.move_all({"PodTopologySpread", "InterPodAffinity"}) == 1
    assert set(q.unschedulable) == {"default/cpu"}


def test_update_and_delete() -> None:
    clock = Clock()
    q = queue(clock)
    rejected(q, "NodeAffinity")
    # A changed spec may fit now: retried (after its backoff).
    q.update(pod_obj("p", nodeSelector={"disk": "ssd"}))
    assert "default/p" not in q.unschedulable and "default/p" in q
    q.delete("default/p")
    assert "default/p" not in q and len(q) == 0


def test_pods_unschedulable_too_long_are_retried() -> None:
    clock = Clock()
    q = queue(clock)
    rejected(q, "NodeAffinity")
    clock.now += 299
    q.flush_unschedulable()
    assert "default/p" in q.unschedulable
    clock.now += 2
    q.flush_unschedulable()
    assert q.pop_nowait() is not None

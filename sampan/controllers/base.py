"""What every controller shares: informers feed a work queue of keys, and workers call
``reconcile(key)``, which reads from the informer caches and writes through the client.

A controller module defines a subclass with a ``name``, wires its informers in ``setup``
and decorates the class with ``@register`` so the manager can start it by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from sampan.client.events import EventRecorder
from sampan.client.informer import Informer, InformerFactory
from sampan.client.interface import Client, Obj, ResourceRef, object_key
from sampan.client.workqueue import WorkQueue, run_workers

Clock = Callable[[], float]


@dataclass
class ControllerOptions:
    """Cluster-wide settings controllers need (mirrors the server's flags)."""

    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    # Node lifecycle: how long a node may stay silent before it is NotReady.
    node_monitor_grace_period: float = 40.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ControllerContext:
    client: Client
    informers: InformerFactory
    options: ControllerOptions = field(default_factory=ControllerOptions)
    clock: Clock = time.time  # wall clock; tests may pass a fake one
    recorders: dict[str, EventRecorder] = field(default_factory=dict)

    def recorder(self, component: str) -> EventRecorder:
        """One event recorder per component name, shared by the controllers using it."""
        found = self.recorders.get(component)
        if found is None:
            found = self.recorders[component] = EventRecorder(self.client, component)
        return found


class Controller:
    """Base class: subclasses set ``name`` and implement ``setup`` and ``reconcile``."""

    name: ClassVar[str] = ""
    workers: ClassVar[int] = 1
    # The component name events are recorded under (upstream's, so `kubectl describe` reads the same).
    component: ClassVar[str] = ""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue: WorkQueue[str] = WorkQueue(name=self.name)
        self.recorder = ctx.recorder(self.component or f"{self.name}-controller")

    def setup(self) -> None:
        """Ask for informers and add handlers (called once, before informers start)."""
        raise NotImplementedError

    async def reconcile(self, key: str) -> float | None:
        """Bring the object named ``key`` to its desired state. Raising requeues with backoff;
        returning a number of seconds asks for another pass after that long."""
        raise NotImplementedError

    # -- helpers for setup ---------------------------------------------------------
    def informer(self, resource: ResourceRef, **selectors: str) -> Informer:
        return self.ctx.informers.informer(resource, **selectors)

    def watch(self, resource: ResourceRef, key_of: Callable[[Obj], str | None] = object_key) -> Informer:
        """An informer whose every add/update/delete enqueues ``key_of(obj)`` (skipped when None)."""
        informer = self.informer(resource)

        def enqueue(obj: Obj) -> None:
            key = key_of(obj)
            if key is not None:
                self.queue.add(key)

        informer.add_handler(on_add=enqueue, on_update=lambda _old, new: enqueue(new), on_delete=enqueue)
        return informer

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def shutdown(self) -> None:
        self.queue.shutdown()


REGISTERED: dict[str, type[Controller]] = {}
C = TypeVar("C", bound=type[Controller])


def register(cls: C) -> C:
    """Class decorator: makes the controller startable by name."""
    assert cls.name and cls.name not in REGISTERED, f"controller name {cls.name!r} missing or taken"
    REGISTERED[cls.name] = cls
    return cls


def controller_owner(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None

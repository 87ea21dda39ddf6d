"""The scheduler: informers feed the cache and the queue; one loop pops a pod, runs the
pure core over a snapshot, assumes the pod on the chosen node and binds asynchronously.

``Scheduler(client)`` works over any client: the server runs it with the in-process
client, tests and remote deployments may give it an HTTP one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Any

from sampan.client.compact import informer_transform
from sampan.client.events import NORMAL, WARNING, EventRecorder
from sampan.client.informer import InformerFactory
from sampan.client.interface import NAMESPACES, NODES, PODS, Client, Obj, is_not_found
from sampan.scheduler.cache import Cache
from sampan.scheduler.config import SchedulerConfig
from sampan.scheduler.core import Algorithm, Diagnosis, ScheduleResult
from sampan.scheduler.framework import ERROR, SKIP, CycleState, Framework, Handle, PostFilterResult, Status
from sampan.scheduler.queue import QueuedPod, SchedulingQueue
from sampan.scheduler.types import PodInfo

log = logging.getLogger(__name__)

COMPONENT = "default-scheduler"
# Plugins whose verdict can change when some other pod is placed or relabelled.
POD_SENSITIVE = {"InterPodAffinity", "PodTopologySpread"}
_NODE_FIELDS = ("allocatable", "capacity", "images")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_name(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def _key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _node_changed(old: Obj, new: Obj) -> bool:
    """Only changes that can make a pod fit count (not heartbeats)."""
    if old.get("spec") != new.get("spec"):
        return True
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        return True
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    return any(old_status.get(f) != new_status.get(f) for f in _NODE_FIELDS)


class Scheduler:
    def __init__(
        self,
        client: Client,
        config: SchedulerConfig | dict[str, Any] | None = None,
        rng: random.Random | None = None,
        event_queue_size: int = 20000,
        informers: InformerFactory | None = None,
    ) -> None:
        self.client = client
        self.config = config if isinstance(config, SchedulerConfig) else SchedulerConfig.from_dict(config)
        self.cache = Cache()
        self.queue = SchedulingQueue(
            self.config.pod_initial_backoff_seconds,
            self.config.pod_max_backoff_seconds,
            self.config.pod_max_in_unschedulable_seconds,
        )
        self.recorder = EventRecorder(client, COMPONENT, queue_size=event_queue_size, writers=8)
        # The server passes the controller manager's factory: one cache per collection.
        self._owns_informers = informers is None
        self.informers = informers or InformerFactory(client, transform=informer_transform())
        self.handle = Handle(client, self.recorder, self.cache, self.informers)
        self.framework = Framework.build(self.config, self.handle)
        self.algorithm = Algorithm(self.framework, self.config.percentage_of_nodes_to_score, rng)
        self.handle.nominated = self.algorithm.nominated
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self.bound = 0  # pods bound since start
        self.failed_attempts = 0

    # -- lifecycle ------------------------------------------------------------------
    async def start(self, sync_timeout: float = 60.0) -> None:
        nodes = self.informers.informer(NODES)
        nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        pods = self.informers.informer(PODS)
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        # Namespace labels, for affinity terms with a namespaceSelector.
        namespaces = self.informers.informer(NAMESPACES)
        namespaces.add_handler(
            self._namespace_changed, lambda _old, new: self._namespace_changed(new), self._namespace_gone
        )
        self.informers.start()
        if not await self.informers.wait_for_sync(sync_timeout):
            log.warning("scheduler informers did not sync within %.0f s; starting anyway", sync_timeout)
        self._tasks = [
            asyncio.create_task(self._run(), name="scheduler loop"),
            asyncio.create_task(self._flush(), name="scheduler queue flush"),
        ]

    async def stop(self) -> None:
        self.queue.close()
        tasks = self._tasks + list(self._pending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._pending = [], set()
        if self._owns_informers:
            await self.informers.stop()
        await self.recorder.close()

    async def idle(self) -> None:
        """Wait for bindings and failure handling in flight (tests, benchmarks)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- informer handlers (they only touch the cache and the queue) -----------------
    def responsible(self, pod: Obj) -> bool:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        return (
            (spec.get("schedulerName") or self.config.scheduler_name) == self.config.scheduler_name
            and not spec.get("nodeName")
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and status.get("phase") not in ("Succeeded", "Failed")
        )

    def _namespace_changed(self, ns: Obj) -> None:
        meta = ns.get("metadata") or {}
        self.cache.namespace_labels[meta.get("name", "")] = meta.get("labels") or {}

    def _namespace_gone(self, ns: Obj) -> None:
        self.cache.namespace_labels.pop((ns.get("metadata") or {}).get("name", ""), None)

    def _node_added(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.move_all()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if not _node_changed(old, new):
            # A heartbeat: keep the parsed node (and the scores remembered for it).
            self.cache.refresh_node(new)
            return
        self.cache.update_node(new)
        self.queue.move_all()

    def _node_deleted(self, node: Obj) -> None:
        self.cache.remove_node((node.get("metadata") or {}).get("name", ""))

    def _pod_added(self, pod: Obj) -> None:
        if _node_name(pod):
            self.cache.add_pod(pod)
            self.queue.move_all(POD_SENSITIVE)
        elif self.responsible(pod):
            self.queue.add(pod)
            self._track_nomination(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = _key(new)
        if _node_name(new):
            if not _node_name(old):
                self.queue.delete(key)
                self.algorithm.nominated.pop(key, None)
            self.cache.update_pod(new)
            if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
                self.queue.move_all(POD_SENSITIVE)
        elif self.responsible(new):
            self.queue.update(new)
            self._track_nomination(new)
        else:
            self.queue.delete(key)
            self.algorithm.nominated.pop(key, None)

    def _track_nomination(self, pod: Obj) -> None:
        """A pending pod's status.nominatedNodeName (set by a preemption, maybe before a
        restart) keeps room on that node for it."""
        node = (pod.get("status") or {}).get("nominatedNodeName")
        key = _key(pod)
        if node:
            self.algorithm.nominated[key] = (PodInfo(pod), node)
        else:
            self.algorithm.nominated.pop(key, None)

    def _pod_deleted(self, pod: Obj) -> None:
        key = _key(pod)
        self.algorithm.nominated.pop(key, None)
        if self.cache.remove_pod(key) is not None:
            self.queue.move_all()  # its resources are free again
        self.queue.delete(key)

    # -- the loop -------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            qp = await self.queue.pop()
            try:
                self.schedule_one(qp)
            except Exception:  # noqa: BLE001 - one bad pod must not stop scheduling
                log.exception("scheduling %s failed", qp.key)
                self.queue.requeue_after_error(qp)
            await asyncio.sleep(0)  # let informers and bindings run between cycles

    async def _flush(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(0.1)
            self.queue.flush_backoff()
            ticks += 1
            if ticks % 300 == 0:
                self.queue.flush_unschedulable()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def schedule_one(self, qp: QueuedPod) -> None:
        """One synchronous scheduling cycle; the binding or failure handling runs on."""
        if self.cache.is_assumed(qp.key) or not self.responsible(qp.pod):
            self.queue.done(qp.key)
            return
        pod = qp.pod_info()
        state = CycleState()
        cycle = self.queue.scheduling_cycle
        snapshot = self.cache.snapshot()
        result = self.algorithm.schedule(state, pod, snapshot)
        if not result.node:
            self.failed_attempts += 1
            post = self._post_filter(state, pod, result)
            self._spawn(self._failed(qp, cycle, result.diagnosis or Diagnosis(len(snapshot.nodes)), post))
            return
        node = result.node
        status = self._reserve(state, pod, node)
        if status is not None:
            self._spawn(self._failed(qp, cycle, Diagnosis(error=status.message), None))
            return
        assumed = self.cache.assume(pod, node)
        self.algorithm.nominated.pop(qp.key, None)
        self._spawn(self._bind(qp, state, assumed, node))

    def _reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        done: list[Any] = []
        for p in self.framework.reserve:
            status = p.reserve(state, pod, node)  # type: ignore[attr-defined]
            if status is not None and status.code != SKIP:
                for q in reversed(done):
                    getattr(q, "unreserve", lambda *_: None)(state, pod, node)
                return status
            done.append(p)
        for p in self.framework.permit:
            status = p.permit(state, pod, node)  # type: ignore[attr-defined]
            if status is not None and status.code != SKIP:
                self._unreserve(state, pod, node)
                return status
        return None

    def _unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        for p in reversed(self.framework.reserve):
            unreserve = getattr(p, "unreserve", None)
            if unreserve is not None:
                unreserve(state, pod, node)

    def _post_filter(self, state: CycleState, pod: PodInfo, result: ScheduleResult) -> PostFilterResult | None:
        diagnosis = result.diagnosis
        if diagnosis is None or diagnosis.error:
            return None
        for p in self.framework.post_filter:
            found, status = p.post_filter(state, pod, self.cache.snapshot(), diagnosis)  # type: ignore[attr-defined]
            if status.ok:
                return found
            if status.reasons:
                diagnosis.post_filter_message = status.message
        return None

    # -- after the cycle ------------------------------------------------------------
    async def _bind(self, qp: QueuedPod, state: CycleState, pod: PodInfo, node: str) -> None:
        status: Status | None = Status(ERROR, "no bind plugin bound the pod")
        for p in self.framework.bind:
            status = await p.bind(state, pod, node)  # type: ignore[attr-defined]
            if status is None or status.code != SKIP:
                break
        if status is not None:
            self.cache.forget(qp.key)
            self._unreserve(state, pod, node)
            self.recorder.event(qp.pod, WARNING, "FailedScheduling", f"Binding rejected: {status.message}")
            self.queue.requeue_after_error(qp)
            return
        self.queue.done(qp.key)
        self.bound += 1
        self.recorder.event(qp.pod, NORMAL, "Scheduled", f"Successfully assigned {pod.namespace}/{pod.name} to {node}")

    async def _failed(
        self, qp: QueuedPod, cycle: int, diagnosis: Diagnosis, post: PostFilterResult | None
    ) -> None:
        nominated = post.nominated_node if post is not None else ""
        if post is not None and post.action is not None:
            try:
                await post.action()
            except Exception as exc:  # noqa: BLE001 - preemption is retried next cycle
                log.warning("preemption for %s failed: %s", qp.key, exc)
        message = diagnosis.message()
        self.recorder.event(qp.pod, WARNING, "FailedScheduling", message)
        try:
            await self._mark_unschedulable(qp.pod, message, nominated)
        except Exception as exc:  # noqa: BLE001 - the pod may be gone; the queue handles it
            if not is_not_found(exc):
                log.warning("could not update the status of %s: %s", qp.key, exc)
        if diagnosis.error:
            self.queue.requeue_after_error(qp)
        else:
            self.queue.add_unschedulable(qp, cycle, diagnosis.unschedulable_plugins)

    async def _mark_unschedulable(self, pod: Obj, message: str, nominated: str) -> None:
        status = pod.get("status") or {}
        current = next((c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"), {})
        same = (current.get("status"), current.get("reason"), current.get("message")) == (
            "False", "Unschedulable", message
        )
        if same and (not nominated or status.get("nominatedNodeName") == nominated):
            return
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": current.get("lastTransitionTime") if current.get("status") == "False" else _now(),
        }
        patch: Obj = {"status": {"conditions": [condition]}}
        if nominated:
            patch["status"]["nominatedNodeName"] = nominated
        meta = pod.get("metadata") or {}
        await self.client.patch(
            PODS, meta.get("name", ""), patch, "strategic", namespace=meta.get("namespace"), subresource="status"
        )

"""The pod side of the simulated agent: pods bound to its nodes start at once, finish when
they are meant to, and are removed for good once deleted. One work queue keyed by pod."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sampan.client.interface import PODS, Obj, is_conflict, is_not_found, object_key, split_key
from sampan.client.workqueue import WorkQueue, run_workers
from sampan.node.simulated_pods import (
    PodRecord,
    completion_plan,
    finished_status,
    new_container_id,
    now_time,
    running_status,
    signature,
)

if TYPE_CHECKING:
    from sampan.node.simulated import SimulatedAgent

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
NODE_NAME_INDEX = "nodeName"


def _seconds_since(stamp: str) -> float:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(then.tzinfo) - then).total_seconds())


class PodSync:
    def __init__(self, agent: SimulatedAgent) -> None:
        self.agent = agent
        self.queue: WorkQueue[str] = WorkQueue(name="simulated-pods")
        self.records: dict[str, PodRecord] = {}
        self._nodes: dict[str, str] = {}  # pod key -> node, to give the address back

    async def start(self) -> None:
        informer = self.agent.pods
        informer.add_handler(
            on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new), on_delete=self._enqueue
        )
        informer.start()
        await informer.wait_for_sync(60)
        # Pods an earlier run started keep their addresses; claim them before handing out new ones.
        for pod in informer.list():
            node = (pod.get("spec") or {}).get("nodeName")
            status = pod.get("status") or {}
            if node in self.agent.index and status.get("phase") == "Running" and status.get("podIP"):
                key = object_key(pod)
                self.records[key] = self._record(key, pod, node)

    def resync_node(self, node: str) -> None:
        """Look at every pod on the node again (their status may have been changed by others)."""
        for key in self.agent.pods.cache.index_keys(NODE_NAME_INDEX, node):
            self.queue.add(key)

    def stop(self) -> None:
        self.queue.shutdown()

    async def run(self) -> None:
        await run_workers(self.queue, self.sync, self.agent.options.pod_workers)

    def _enqueue(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        key = object_key(pod)
        if node in self.agent.index or key in self.records:
            self.queue.add(key)

    def _forget(self, key: str) -> None:
        self.records.pop(key, None)
        node = self._nodes.pop(key, None)
        if node is not None:
            self.agent.pod_addresses(node).release(key)

    def _record(self, key: str, pod: Obj, node: str) -> PodRecord:
        """A new record for a pod we start now, or one rebuilt from the status an earlier run wrote."""
        loop = asyncio.get_running_loop()
        meta, status = pod["metadata"], pod.get("status") or {}
        addresses = self.agent.pod_addresses(node)
        self._nodes[key] = node
        if status.get("phase") == "Running" and status.get("podIP"):
            addresses.reserve(key, status["podIP"])
            started = status.get("startTime") or now_time()
            record = PodRecord(meta["uid"], status["podIP"], started, loop.time() - _seconds_since(started))
            for cs in status.get("containerStatuses") or []:
                if cs.get("containerID"):
                    record.container_ids[cs["name"]] = cs["containerID"]
                record.restarts = max(record.restarts, int(cs.get("restartCount") or 0))
            return record
        spec = pod.get("spec") or {}
        ip = self.agent.host_ip(node) if spec.get("hostNetwork") else addresses.get(key)
        return PodRecord(meta["uid"], ip, now_time(), loop.time())

    async def sync(self, key: str) -> float | None:
        pod = self.agent.pods.get(key)
        record = self.records.get(key)
        if pod is None or (record is not None and record.uid != pod["metadata"].get("uid")):
            self._forget(key)
            if pod is None:
                return None
            record = None
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if node not in self.agent.index:
            return None
        meta, status = pod["metadata"], pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            await self._remove(key, meta["uid"])
            return None
        if status.get("phase") in TERMINAL:
            self._forget(key)
            return None
        if record is None:
            record = self.records[key] = self._record(key, pod, node)
        desired, again = self._desired(pod, record, node)
        if signature(desired) != signature(status):
            ns, name = split_key(key)
            try:
                await self.agent.client.patch(PODS, name, {"status": desired}, "merge", ns, subresource="status")
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        if desired["phase"] in TERMINAL:
            self._forget(key)
        return again

    def _desired(self, pod: Obj, record: PodRecord, node: str) -> tuple[Obj, float | None]:
        """The status to report now, and when to look at the pod again (for pods that finish)."""
        host_ip, now = self.agent.host_ip(node), now_time()
        plan = completion_plan(pod, self.agent.options.job_duration)
        if plan is None:
            return running_status(pod, record, host_ip, now), None
        duration, exit_code = plan
        remaining = record.started_mono + duration - asyncio.get_running_loop().time()
        if remaining > 0:
            return running_status(pod, record, host_ip, now), remaining
        if exit_code != 0 and (pod.get("spec") or {}).get("restartPolicy") == "OnFailure":
            # The kubelet restarts a failed container in place; the pod keeps running.
            since = record.running_since or record.started_at
            record.last_exit = {"exitCode": exit_code, "reason": "Error", "startedAt": since, "finishedAt": now}
            record.restarts += 1
            record.running_since = now
            record.started_mono = asyncio.get_running_loop().time()
            record.container_ids = {name: new_container_id() for name in record.container_ids}
            return running_status(pod, record, host_ip, now), duration
        return finished_status(pod, record, host_ip, now, exit_code), None

    async def _remove(self, key: str, uid: str) -> None:
        """Containers of a deleted pod are "stopped" at once; then the pod object goes for good."""
        ns, name = split_key(key)
        try:
            await self.agent.client.delete(PODS, name, ns, grace_period_seconds=0, preconditions={"uid": uid})
        except Exception as exc:
            if not (is_not_found(exc) or is_conflict(exc)):
                raise
        self._forget(key)

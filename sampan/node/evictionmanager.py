"""Node-pressure eviction on a real node: every monitoring interval the agent observes memory,
its filesystems and PIDs, keeps the node's MemoryPressure/DiskPressure/PIDPressure conditions
(the node lifecycle controller turns them into NoSchedule taints), reclaims unused images under
disk pressure and, if that is not enough, evicts at most one pod: phase Failed, reason Evicted,
a DisruptionTarget condition, its containers killed. Before that, pods over their own local
storage limits (emptyDir sizeLimit, ephemeral-storage limits) are evicted whatever the node
has free. Decisions are in sampan/node/eviction.py.

memory.available is MemTotal against /proc/meminfo's MemAvailable (the kernel's own estimate
of what can be had without swapping); the filesystems are statvfs of the agent's data dir
(nodefs) and of the image store (imagefs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sampan.client.events import NORMAL, WARNING
from sampan.node import eviction as ev
from sampan.node.nodestatus import meminfo
from sampan.node.podstatus import rfc3339
from sampan.node.runtimes.base import ContainerState

if TYPE_CHECKING:
    from sampan.node.agent import NodeAgent
    from sampan.node.podworker import PodWorker

log = logging.getLogger(__name__)
Obj = dict[str, Any]
# The kubelet's image GC defaults: above 85% disk use, unused images go until 80%, every 5 min.
IMAGE_GC_HIGH, IMAGE_GC_LOW, IMAGE_GC_PERIOD = 0.85, 0.80, 300.0


def _fs(path: Path) -> tuple[ev.Observation, ev.Observation]:
    st = os.statvfs(path)
    return (ev.Observation(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize),
            ev.Observation(st.f_ffree, st.f_files))


def observe(nodefs: Path, imagefs: Path) -> dict[str, ev.Observation]:
    """Every signal's available amount and capacity (blocking: run in a thread)."""
    out: dict[str, ev.Observation] = {}
    info = meminfo()
    if "MemTotal" in info and "MemAvailable" in info:
        out[ev.MEMORY_AVAILABLE] = ev.Observation(info["MemAvailable"], info["MemTotal"])
    with contextlib.suppress(OSError):
        out[ev.NODEFS_AVAILABLE], out[ev.NODEFS_INODES_FREE] = _fs(nodefs)
    with contextlib.suppress(OSError):
        out[ev.IMAGEFS_AVAILABLE], out[ev.IMAGEFS_INODES_FREE] = _fs(imagefs if imagefs.exists() else nodefs)
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        threads = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
        out[ev.PID_AVAILABLE] = ev.Observation(max(0, pid_max - threads), pid_max)
    return out


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes (allocated blocks) and inodes under ``path``, not crossing into other filesystems
    (a memory-backed emptyDir is no disk)."""
    try:
        dev = path.lstat().st_dev
    except OSError:
        return 0, 0
    size = inodes = 0
    stack = [str(path)]
    while stack:
        top = stack.pop()
        with contextlib.suppress(OSError), os.scandir(top) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_dev != dev:
                        continue
                    size += st.st_blocks * 512
                    inodes += 1
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return size, inodes


class EvictionManager:
    def __init__(self, agent: NodeAgent, config: ev.EvictionConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.agent = agent
        self.config = config
        self.clock = clock
        self.state = ev.EvictionState(config)
        self.conditions: set[str] = set()  # node conditions that are True now
        self.observations: dict[str, ev.Observation] = {}
        self._last_image_gc = -IMAGE_GC_PERIOD
        status = getattr(agent, "status", None)
        if status is not None:  # what the hard thresholds keep aside is not allocatable
            status.allocatable = ev.allocatable(status.capacity, config.hard)

    @property
    def imagefs(self) -> Path:
        return Path(getattr(self.agent.images, "root", self.agent.data_dir))

    async def run(self) -> None:
        while True:
            try:
                await self.synchronize()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - observe again at the next interval
                log.exception("eviction manager round failed")
            await asyncio.sleep(self.config.monitoring_interval)

    def admit(self, pod: Obj) -> tuple[str, str] | None:
        from sampan.node.podstatus import qos_class

        return ev.admission_refusal(self.conditions, pod, qos_class(pod))

    async def synchronize(self) -> Obj | None:
        """One round; returns the pod it evicted, if any."""
        self.observations = await asyncio.to_thread(observe, self.agent.data_dir, self.imagefs)
        decision = self.state.update(self.observations, self.clock())
        await self._set_conditions(decision.conditions)
        await self._routine_image_gc()
        evicted = await self._enforce_storage_limits()
        if evicted is not None:
            return evicted
        if not decision.thresholds:
            return None
        threshold = decision.thresholds[0]
        resource = ev.RESOURCE_OF[threshold.signal]
        self.agent.recorder.event(self._node_ref(), WARNING, "EvictionThresholdMet",
                                  f"Attempting to reclaim {resource}")
        if threshold.signal in ev.DISK_SIGNALS and await self._reclaim_images(threshold):
            return None
        usages = await self._usages(resource)
        for usage in ev.rank(resource, usages):
            if ev.is_critical(usage.pod):
                continue
            worker = self.agent.workers.get(usage.pod["metadata"]["uid"])
            if worker is not None:
                message = ev.eviction_message(threshold, self.observations.get(threshold.signal), usage)
                await self.evict(worker, message, ev.grace_period(threshold, usage.pod, self.config.max_pod_grace_period))
                return usage.pod
        log.warning("eviction manager: no pod to evict to reclaim %s", resource)
        return None

    # -- node conditions -------------------------------------------------------------------
    async def _set_conditions(self, conditions: set[str]) -> None:
        if conditions == self.conditions:
            return
        before, self.conditions = self.conditions, set(conditions)
        name = self.agent.node_name
        for cond, (bad, good) in ev.CONDITION_EVENTS.items():
            if (cond in conditions) != (cond in before):
                reason = bad if cond in conditions else good
                self.agent.recorder.event(self._node_ref(), NORMAL, reason, f"Node {name} status is now: {reason}")
        status = getattr(self.agent, "status", None)
        if status is not None and status.online and status.uid:
            try:  # at once, not at the next heartbeat
                await status.post_status()
            except Exception as exc:  # noqa: BLE001 - the heartbeat writes it later
                log.debug("posting node status failed: %s", exc)

    def _node_ref(self) -> Obj:
        name = self.agent.node_name
        return {"apiVersion": "v1", "kind": "Node", "name": name, "uid": name}

    # -- reclaiming node-level resources ---------------------------------------------------
    async def _gc_images(self, want: int) -> int:
        gc = getattr(self.agent.images, "gc", None)
        if gc is None or want <= 0:
            return 0
        try:
            freed = int(await gc(want))
        except Exception as exc:  # noqa: BLE001 - tried again later
            log.warning("image garbage collection failed: %s", exc)
            return 0
        if freed:
            log.warning("image garbage collection freed %d bytes", freed)
        return freed

    async def _routine_image_gc(self) -> None:
        seen = self.observations.get(ev.IMAGEFS_AVAILABLE)
        now = self.clock()
        if seen is None or not seen.capacity or now - self._last_image_gc < IMAGE_GC_PERIOD:
            return
        if seen.available < seen.capacity * (1 - IMAGE_GC_HIGH):
            self._last_image_gc = now
            await self._gc_images(int(seen.capacity * (1 - IMAGE_GC_LOW)) - seen.available)

    async def _reclaim_images(self, threshold: ev.Threshold) -> bool:
        """Unused images go first; True when that was enough."""
        seen = self.observations.get(threshold.signal)
        if seen is None:
            return False
        if threshold.signal in (ev.NODEFS_AVAILABLE, ev.IMAGEFS_AVAILABLE):
            want = threshold.amount(seen.capacity) - seen.available + 1
        else:
            want = 1 << 62  # inodes: free whatever is unused
        if not await self._gc_images(want):
            return False
        self.observations = await asyncio.to_thread(observe, self.agent.data_dir, self.imagefs)
        if ev.is_met(threshold, self.observations):
            return False
        log.info("image garbage collection reclaimed enough %s", ev.RESOURCE_OF[threshold.signal])
        return True

    # -- pods ------------------------------------------------------------------------------
    def _active_workers(self) -> list[PodWorker]:
        return [w for w in self.agent.workers.values() if w.admitted and not (w.finished or w.deleted)]

    async def _enforce_storage_limits(self) -> Obj | None:
        """Pods over their own local storage limits (emptyDir sizeLimit, ephemeral-storage
        limits) are evicted at once, however much the node has free; returns the first."""
        first = None
        for worker in self._active_workers():
            if not ev.has_storage_limits(worker.pod) or ev.is_critical(worker.pod):
                continue
            usage = ev.PodUsage(worker.pod)
            empty_dirs = await asyncio.to_thread(self._storage, worker, usage)
            message = ev.storage_limit_violation(usage, empty_dirs)
            if message is not None:
                await self.evict(worker, message, 0)
                first = first or worker.pod
        return first

    async def _usages(self, resource: str) -> list[ev.PodUsage]:
        out = []
        for worker in self._active_workers():
            usage = ev.PodUsage(worker.pod)
            for t in worker.all_tracked():
                if not t.running or t.id is None:
                    continue
                usage.processes += 1
                if resource == "memory":
                    with contextlib.suppress(Exception):
                        stats = await self.agent.runtime.stats(t.id)
                        usage.container_memory[t.name] = int(stats.memory_working_set_bytes)
            usage.memory = sum(usage.container_memory.values())
            if resource in ("ephemeral-storage", "inodes"):
                await asyncio.to_thread(self._storage, worker, usage)
            out.append(usage)
        return out

    def _storage(self, worker: PodWorker, usage: ev.PodUsage) -> dict[str, int]:
        """Local volumes, each container's writable layer and logs (blocking). Returns the
        bytes used by each disk-backed emptyDir that has a sizeLimit."""
        m = worker.pod["metadata"]
        volumes = self.agent.volumes.pod_dir(worker.uid)
        empty_dirs = {name: disk_usage(volumes / "empty-dir" / name)[0]
                      for name in ev.disk_empty_dirs_with_limits(worker.pod)}
        size, inodes = disk_usage(self.agent.pods_dir / worker.uid)
        logs = self.agent.log_dir / f"{m.get('namespace', 'default')}_{m['name']}_{worker.uid}"
        for t in worker.all_tracked():
            used = 0
            for part in ((self.imagefs / "containers" / t.id / "upper") if t.id else None, logs / t.name):
                if part is not None:
                    s, i = disk_usage(part)
                    used, inodes = used + s, inodes + i
            usage.container_storage[t.name] = used
            size += used
        usage.storage, usage.inodes = size, inodes
        return empty_dirs

    async def evict(self, worker: PodWorker, message: str, grace: int) -> None:
        """Fails the pod with reason Evicted and kills its containers (the pod object stays)."""
        agent, pod = self.agent, worker.pod
        log.warning("evicting pod %s/%s: %s", pod["metadata"].get("namespace"), pod["metadata"]["name"], message)
        worker.finished = True  # from now on nothing restarts
        agent.recorder.event(pod, WARNING, "Evicted", message)
        for p in worker.probers.values():
            p.stop()
        worker.probers.clear()
        running = [t for t in worker.all_tracked() if t.running and t.id]
        for t in running:
            worker.event(NORMAL, "Killing", f"Stopping container {t.name}")

        async def kill(t: Any) -> None:
            if grace > 0:
                await worker.stop_one(t, grace)
            else:
                await agent.runtime.stop_container(t.id, 0)

        await asyncio.gather(*(kill(t) for t in running if not t.sidecar), return_exceptions=True)
        await asyncio.gather(*(kill(t) for t in running if t.sidecar), return_exceptions=True)
        for t in running:
            try:
                t.state = await agent.runtime.state(t.id)
            except Exception:  # noqa: BLE001 - gone: killed
                t.state = ContainerState(t.id, worker.uid, t.name, "exited", exit_code=137, finished_at=time.time())
            if t.exited and not t.exit_handled:
                t.exit_handled = True
                await worker.on_exit(t)
        # What the pod held goes back: its address and its local volumes' space.
        for step in (agent.release_network(worker.uid), agent.volumes.teardown(worker.uid)):
            try:
                await step
            except Exception as exc:  # noqa: BLE001 - done again when the pod is deleted
                log.warning("cleaning up evicted pod %s: %s", pod["metadata"]["name"], exc)
        worker.view.phase_override, worker.view.reason, worker.view.message = "Failed", "Evicted", message
        worker.view.extra["conditions"] = [{"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                                            "lastTransitionTime": rfc3339(), "reason": "TerminationByKubelet",
                                            "message": message}]
        worker.last_status_key = ""
        await worker.report()
        worker.wake.set()

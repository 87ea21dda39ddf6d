"""One pod's lifecycle on this node, like the kubelet's syncPod: admission, pod cgroup, network,
sandbox, volumes, init containers in order, app containers with restarts and back-off, probes,
hooks, graceful termination, and the pod's status (written only when it changed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from sampan.client.events import NORMAL, WARNING
from sampan.client.interface import PODS, is_conflict, is_not_found
from sampan.client.wakeup import wait_event
from sampan.node import containers as ctr
from sampan.node.podstatus import PodView, Tracked, build_status, rfc3339
from sampan.node.probes import ContainerProber
from sampan.node.runtimes.base import ContainerState, Resources, SandboxConfig

if TYPE_CHECKING:
    from sampan.node.agent import NodeAgent

log = logging.getLogger(__name__)
Obj = dict[str, Any]

TICK = 1.0  # how often a worker looks at its pod
POLL = 2.0  # how often running containers' states are asked for (the runtime has no event stream)


def pod_ref(pod: Obj) -> str:
    m = pod["metadata"]
    return f"{m['name']}_{m.get('namespace', 'default')}({m['uid']})"


def _alive(pid: int | None) -> bool:
    return bool(pid) and os.path.exists(f"/proc/{pid}")


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _ready(pod: Obj) -> str:
    conds = (pod.get("status") or {}).get("conditions") or []
    return next((c.get("status", "") for c in conds if c.get("type") == "Ready"), "")


class PodWorker:
    def __init__(self, agent: NodeAgent, pod: Obj, adopted: list[ContainerState] | None = None) -> None:
        self.agent = agent
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        spec = pod.get("spec") or {}
        self.inits = [Tracked(c["name"], init=True, sidecar=c.get("restartPolicy") == "Always")
                      for c in spec.get("initContainers") or []]
        self.apps = [Tracked(c["name"]) for c in spec.get("containers") or []]
        self.ephemerals: list[Tracked] = []
        self._add_ephemerals(spec)
        self.view = PodView(host_ip=agent.node_ip)
        self.sandbox: SandboxConfig | None = None
        self.volumes: dict[str, Any] = {}
        self.previous: dict[str, str] = {}  # container name -> previous container id (logs --previous)
        self.probers: dict[str, ContainerProber] = {}
        self.wake = asyncio.Event()
        self.deleted = False  # gone from the server (or being deleted)
        self.finished = False
        self.last_status: Obj | None = None
        self.adopted = bool(adopted)
        self._last_refresh = 0.0
        self.admitted = bool(adopted) or bool((pod.get("status") or {}).get("startTime"))
        self.task: asyncio.Task[None] | None = None
        for state in sorted(adopted or [], key=lambda s: int(s.labels.get(ctr.ATTEMPT, "0"))):
            self._adopt(state)

    # -- inputs from the agent ------------------------------------------------------------
    def update(self, pod: Obj) -> None:
        ours = _ready(self.pod)
        self.pod = pod
        self._add_ephemerals(pod.get("spec") or {})
        if _ready(pod) != ours:
            self.last_status_key = ""  # someone else (node lifecycle) changed it: write ours again
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.deleted = True
        self.wake.set()

    def remove(self) -> None:
        """The pod is gone from the server (or was never there): stop everything."""
        self.deleted = True
        self.wake.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod {pod_ref(self.pod)}")

    async def stop(self) -> None:
        """Agent shutdown: stop watching, leave the containers running."""
        for p in self.probers.values():
            p.stop()
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def _add_ephemerals(self, spec: Obj) -> None:
        """Ephemeral containers are only ever added to a pod (its ephemeralcontainers subresource)."""
        known = {t.name for t in self.ephemerals}
        self.ephemerals += [Tracked(c["name"], ephemeral=True) for c in spec.get("ephemeralContainers") or []
                            if c.get("name") not in known]

    def all_tracked(self) -> list[Tracked]:
        return self.inits + self.apps + self.ephemerals

    def tracked(self, name: str) -> Tracked | None:
        return next((t for t in self.all_tracked() if t.name == name), None)

    def spec_of(self, t: Tracked) -> Obj:
        group = "initContainers" if t.init else "ephemeralContainers" if t.ephemeral else "containers"
        return next(c for c in self.pod["spec"].get(group) or [] if c["name"] == t.name)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.agent.recorder.event(self.pod, type_, reason, message)

    def _adopt(self, state: ContainerState) -> None:
        t = self.tracked(state.name)
        if t is None:
            return
        attempt = int(state.labels.get(ctr.ATTEMPT, "0"))
        if t.state is not None and t.state.status == "exited":
            t.last_terminated = ctr.terminated_of(t.state)
            self.previous[t.name] = t.state.id
        t.id, t.state, t.restart_count = state.id, state, attempt
        t.waiting_reason = ""
        t.started = state.status == "running"
        t.image = state.labels.get(ctr.IMAGE, "")
        t.image_id = state.labels.get(ctr.IMAGE_ID, "")

    # -- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                if await self.sync():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("syncing pod %s failed", pod_ref(self.pod))
            await wait_event(self.wake, TICK)
            self._woken = self.wake.is_set()
            self.wake.clear()

    async def sync(self) -> bool:
        """One round; True when the pod is gone for good and the worker can end."""
        if self.deleted:
            await self.terminate()
            return True
        if self.finished:
            await self.report()
            return False
        if not self.admitted:
            reason = self.agent.admit(self.pod)
            if reason:
                self.view.phase_override, self.view.reason, self.view.message = "Failed", reason[0], reason[1]
                self.event(WARNING, reason[0], reason[1])
                self.finished = True
                await self.report()
                return False
            self.admitted = True
        if self.sandbox is None and not await self.setup_sandbox():
            await self.report()
            return False
        await self.refresh_states()
        if await self.past_deadline():
            return False
        await self.refresh_volumes()
        for t in self.ephemerals:  # for debugging even a pod stuck in its init containers
            if t.id is None:
                await self.start_container(t)
        initialized = await self.run_inits()
        if initialized:
            for t in self.apps:
                await self.ensure_running(t, self.pod["spec"].get("restartPolicy", "Always"))
        await self.report(initialized)
        return False

    # -- sandbox -------------------------------------------------------------------------
    async def setup_sandbox(self) -> bool:
        a, pod = self.agent, self.pod
        spec, meta = pod["spec"], pod["metadata"]
        host_network = bool(spec.get("hostNetwork"))
        qos = ctr.qos_of(pod)
        # Volumes need no sandbox (token requests, files): they are prepared alongside it.
        volumes = asyncio.ensure_future(a.volumes.setup(pod))
        try:
            resources = a.cgroups.pod_resources(pod) if a.cgroups else Resources()
            parent = a.cgroups.pod_parent(self.uid, qos) if a.cgroups else ""
            if a.cgroups:
                await a.cgroups.ensure_pod(self.uid, qos, resources)
            netns, ip = None, a.node_ip
            if not host_network:
                netns, ip = await a.pod_network(pod)
            self.view.pod_ip = ip
            hostname = spec.get("hostname") or meta["name"]
            self.sandbox = SandboxConfig(
                pod_uid=self.uid, namespace=meta.get("namespace", "default"), name=meta["name"],
                hostname=hostname[:63], host_network=host_network or netns == "", netns_path=netns or None,
                host_pid=bool(spec.get("hostPID")), host_ipc=bool(spec.get("hostIPC")),
                share_process_namespace=bool(spec.get("shareProcessNamespace")) and not spec.get("hostPID"),
                cgroup_parent=parent,
                resources=resources, dns_config=a.resolv_conf(pod), hosts=a.hosts_file(pod, ip, hostname))
            if not self.adopted:
                await a.runtime.create_sandbox(self.sandbox)
        except BaseException as exc:
            await asyncio.gather(volumes, return_exceptions=True)  # set up again on the next try
            if not isinstance(exc, Exception):
                raise
            self.sandbox = None
            self.event(WARNING, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            return False
        try:
            self.volumes = await volumes
        except Exception as exc:  # noqa: BLE001
            self.event(WARNING, "FailedMount", f"MountVolume.SetUp failed: {exc}")
            self.sandbox = None
            return False
        self._last_refresh = time.monotonic()  # just written: the periodic refresh starts from here
        self.view.sandbox_ready = True
        for t in self.all_tracked():
            if t.running and t.name not in self.probers:  # re-adopted: probe again from scratch
                self._after_start(t, self.spec_of(t))
        self.view.start_time = (pod.get("status") or {}).get("startTime") or rfc3339()
        return True

    async def refresh_volumes(self) -> None:
        """ConfigMap/Secret/downward API contents reach running pods (like the kubelet's sync)."""
        now = time.monotonic()
        if now - self._last_refresh < self.agent.volume_refresh:
            return
        self._last_refresh = now
        try:
            await self.agent.volumes.refresh(self.pod)
        except Exception as exc:  # noqa: BLE001
            log.debug("refreshing volumes of %s: %s", pod_ref(self.pod), exc)

    # -- containers ----------------------------------------------------------------------
    async def refresh_states(self) -> None:
        now = time.monotonic()
        if not self._woken and now - self._polled < POLL and not any(t.exited and not t.exit_handled
                                                                     for t in self.all_tracked()):
            return
        routine = not self._woken
        self._polled, self._woken = now, False
        for t in self.all_tracked():
            if t.id is None:
                continue
            if routine and t.running and _alive(t.state.pid if t.state else None):
                continue  # its process is still there: no need to ask the runtime (a runc call each)
            if not t.exited:  # exited containers stay exited: only a restart (a new id) changes them
                try:
                    t.state = await self.agent.runtime.state(t.id)
                except Exception:  # noqa: BLE001 - gone: treat as exited with unknown code
                    t.state = ContainerState(t.id, self.uid, t.name, "exited", exit_code=137, finished_at=time.time())
            if t.exited and not t.exit_handled:
                t.exit_handled = True
                await self.on_exit(t)

    async def on_exit(self, t: Tracked) -> None:
        p = self.probers.pop(t.name, None)
        if p:
            p.stop()
        t.ready = False
        t.started = False
        t.message = await ctr.termination_message(self, t)
        state = t.state
        assert state is not None
        ran = (state.finished_at or time.time()) - (state.started_at or time.time())
        if ran > 600:
            t.backoff = 0.0  # ran long enough: the back-off starts over
        t.backoff_until = time.monotonic() + t.backoff
        t.backoff = 10.0 if t.backoff == 0 else min(t.backoff * 2, 300.0)

    def _should_restart(self, t: Tracked, policy: str) -> bool:
        assert t.state is not None
        if t.sidecar or policy == "Always":
            return True
        return policy == "OnFailure" and t.state.exit_code != 0

    async def ensure_running(self, t: Tracked, policy: str) -> None:
        if t.id is None:
            await self.start_container(t)
            return
        if t.running and t.image and ctr.normalized(self.spec_of(t).get("image", "")) != t.image:
            self.event(NORMAL, "Killing", f"Container {t.name} definition changed, will be restarted")
            t.backoff = 0.0  # a new image starts at once
            await self.stop_one(t, ctr.grace_of(self.pod))
            return
        if not t.exited:
            return
        if not self._should_restart(t, policy):
            t.waiting_reason = ""
            return
        if time.monotonic() < t.backoff_until:
            t.last_terminated = t.terminated()
            delay = int(t.backoff / 2) if t.backoff > 10 else 10
            t.waiting_reason = "CrashLoopBackOff"
            t.waiting_message = f"back-off {ctr.go_duration(delay)} restarting failed container={t.name} pod={pod_ref(self.pod)}"
            if not t.backoff_reported:
                self.event(WARNING, "BackOff", f"Back-off restarting failed container {t.name} in pod {pod_ref(self.pod)}")
                t.backoff_reported = True
            return
        t.backoff_reported = False
        t.last_terminated = t.terminated()
        t.restart_count += 1
        await self.start_container(t)

    async def run_inits(self) -> bool:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for t in self.inits:
            if t.sidecar:
                await self.ensure_running(t, "Always")
                if not t.running:
                    return False
                continue
            if t.succeeded:
                t.waiting_reason = ""
                continue
            if t.running:
                return False
            if t.id is not None and t.exited:
                if policy == "Never":
                    t.waiting_reason = ""
                    self.finished = True
                    return False
                await self.ensure_running(t, "OnFailure")
                return False
            await self.start_container(t)
            return False
        return True

    async def start_container(self, t: Tracked) -> None:
        spec = self.spec_of(t)
        try:
            state = await ctr.create_and_start(self, t, spec)
        except ctr.StartError as exc:
            t.waiting_reason, t.waiting_message = exc.reason, exc.message
            return
        t.state, t.id, t.waiting_reason, t.waiting_message = state, state.id, "", ""
        t.exit_handled = False
        if t.exited:
            t.exit_handled = True
            await self.on_exit(t)
        self._after_start(t, spec)

    def _after_start(self, t: Tracked, spec: Obj) -> None:
        t.started = not spec.get("startupProbe")
        t.ready = t.started and not spec.get("readinessProbe") and not (t.init or t.ephemeral)
        if spec.get("livenessProbe") or spec.get("readinessProbe") or spec.get("startupProbe"):
            prober = ContainerProber(self, t, spec)
            self.probers[t.name] = prober
            prober.start()

    async def kill_for_liveness(self, t: Tracked, message: str) -> None:
        self.event(WARNING, "Unhealthy", f"Liveness probe failed: {message}")
        self.event(NORMAL, "Killing", f"Container {t.name} failed liveness probe, will be restarted")
        await self.stop_one(t, ctr.grace_of(self.pod, liveness=True))
        self.wake.set()

    async def stop_one(self, t: Tracked, grace: float) -> None:
        if t.id is None or not t.running:
            return
        p = self.probers.pop(t.name, None)
        if p:
            p.stop()
        spent = await ctr.pre_stop(self, t, self.spec_of(t), grace)
        await self.agent.runtime.stop_container(t.id, max(0.0, grace - spent))

    async def past_deadline(self) -> bool:
        return await ctr.check_deadline(self)

    # -- termination ---------------------------------------------------------------------
    async def terminate(self) -> None:
        meta = self.pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds",
                               self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
        running = [t for t in self.all_tracked() if t.running]
        for t in running:
            self.event(NORMAL, "Killing", f"Stopping container {t.name}")
        # App containers first, sidecars after them, like the kubelet.
        await asyncio.gather(*(self.stop_one(t, grace) for t in running if not t.sidecar), return_exceptions=True)
        await asyncio.gather(*(self.stop_one(t, grace) for t in running if t.sidecar), return_exceptions=True)
        await self.release()
        if meta.get("deletionTimestamp"):
            try:
                await self.agent.client.delete(PODS, meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                               preconditions={"uid": self.uid})
            except Exception as exc:  # noqa: BLE001 - already gone, or replaced by a new pod of that name
                if not (is_not_found(exc) or is_conflict(exc)):
                    raise
        await self.agent.forget(self.uid)

    async def release(self) -> None:
        """Removes every container, volume, the network and the cgroup of the pod."""
        a = self.agent
        for p in self.probers.values():
            p.stop()
        self.probers.clear()
        ids = {t.id for t in self.all_tracked() if t.id} | set(self.previous.values())
        with contextlib.suppress(Exception):
            if hasattr(a.runtime, "pod_container_ids"):  # cheap: no runtime call per container
                ids |= set(await a.runtime.pod_container_ids(self.uid))
            else:
                ids |= {c.id for c in await a.runtime.list_containers() if c.pod_uid == self.uid}
        for cid in ids:
            with contextlib.suppress(Exception):
                await a.runtime.remove_container(cid)
            with contextlib.suppress(Exception):
                await a.images.unmount_rootfs(cid)
        # Containers are gone: sandbox, volumes and network are independent of each other.
        steps = [a.runtime.remove_sandbox(self.uid), a.volumes.teardown(self.uid), a.release_network(self.uid)]
        outcomes = await asyncio.gather(*steps, return_exceptions=True)
        if a.cgroups:
            outcomes += await asyncio.gather(a.cgroups.remove_pod(self.uid, ctr.qos_of(self.pod)),
                                             return_exceptions=True)
        for exc in outcomes:
            if isinstance(exc, Exception):  # best effort: leftovers are swept at start-up
                log.warning("cleaning up pod %s: %s", pod_ref(self.pod), exc)

    # -- status --------------------------------------------------------------------------
    async def report(self, initialized: bool | None = None) -> None:
        if self.frozen:
            return
        if initialized is None:
            initialized = all(t.succeeded or (t.sidecar and t.running) for t in self.inits)
        status = build_status(self.pod, self.view, self.inits, self.apps, initialized, self.ephemerals)
        if status["phase"] in ("Succeeded", "Failed") and not self.finished:
            self.finished = True
            for p in self.probers.values():
                p.stop()
            self.probers.clear()
            if self.sandbox is not None and not self.sandbox.host_network:
                try:  # a finished pod gives its address back; containers stay for their logs
                    await self.agent.release_network(self.uid)
                except Exception as exc:  # noqa: BLE001 - retried when the pod is deleted
                    log.warning("releasing the network of %s: %s", pod_ref(self.pod), exc)
        # Without nulls: the server drops them (a condition's lastProbeTime), which must not
        # look like a change and cost a second write.
        comparable = json.dumps(_without_nulls(status), sort_keys=True)
        if comparable == self.last_status_key and self._epoch == self.agent.epoch:
            return
        try:
            meta = self.pod["metadata"]
            updated = await self.agent.client.patch(PODS, meta["name"], {"status": status}, "merge",
                                                    namespace=meta.get("namespace"), subresource="status")
            self.pod = {**self.pod, "status": updated.get("status", status)}
            self.last_status_key = comparable
            self._epoch = self.agent.epoch
        except Exception as exc:  # noqa: BLE001 - offline: report when the server is back
            if is_not_found(exc):
                self.remove()
            log.debug("status of %s not written: %s", pod_ref(self.pod), exc)

    last_status_key: str = ""
    _polled = 0.0
    _woken = True
    frozen = False  # a finished pod this agent did not run: its stored status stays as it is
    _epoch: int = -1

"""The node agent: registers this machine as a Node, keeps its Lease and status fresh, and runs
one pod worker per pod bound to it. What it was told to run (pods, and the ConfigMaps and
Secrets they use) is kept in its own SQLite file so it carries on when the server is out of
reach, and it re-adopts the containers it finds running when it starts again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from sampan.client.events import EventRecorder
from sampan.client.informer import Informer
from sampan.client.interface import CONFIGMAPS, PODS, SECRETS, SERVICEACCOUNTS, SERVICES, Client, is_not_found
from sampan.client.wakeup import wait_event
from sampan.node import envs
from sampan.node.localpath import LocalStorage
from sampan.node.metrics import ResourceMetrics
from sampan.node.nodestatus import NodeStatus
from sampan.node.podworker import PodWorker
from sampan.node.runtimes.base import ContainerState
from sampan.node.state import AgentState
from sampan.node.sysctls import Allowlist
from sampan.node.volumes import VolumeManager

log = logging.getLogger(__name__)
Obj = dict[str, Any]
KINDS = {"ConfigMap": CONFIGMAPS, "Secret": SECRETS}
OBJECT_FRESH_SECONDS = 1.0


class NodeAgent:
    def __init__(
        self, client: Client, node_name: str, data_dir: Path, runtime: Any, images: Any, network: Any,
        cgroups: Any, *, node_ip: str = "127.0.0.1", lease_interval: float = 10.0, status_interval: float = 60.0,
        volume_refresh: float = 10.0, kubelet_version: str = "", pod_cidr_timeout: float = 120.0,
        close_client: bool = False, eviction: Any = None, allowed_unsafe_sysctls: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        self.close_client = close_client  # the agent made the client (in-process agent): close it on stop
        self.node_name = node_name
        self.data_dir = Path(data_dir)
        self.runtime = runtime
        self.images = images
        # A PodNetwork, or a factory taking the node's podCIDR (known once node IPAM assigned it).
        self._network_factory: Callable[[str], Any] | None = None
        self.network: Any = None
        if network is not None and not hasattr(network, "setup"):
            self._network_factory = network
        else:
            self.network = network
        self.cgroups = cgroups
        self.node_ip = node_ip
        self.volume_refresh = volume_refresh
        self.pod_cidr_timeout = pod_cidr_timeout
        root = self.data_dir / "agent"
        self.pods_dir = root / "pods"
        self.log_dir = root / "logs"
        self.seccomp_dir = root / "seccomp"  # Localhost seccomp profiles
        self.state = AgentState(root / "state.db")
        # ConfigMaps/Secrets fetched in the last OBJECT_FRESH_SECONDS (or being fetched): pods
        # started together share one read (every pod mounts kube-root-ca.crt).
        self._fresh_objects: dict[tuple[str, str, str], tuple[float, asyncio.Future[Obj | None]]] = {}
        self.recorder = EventRecorder(client, "kubelet", host=node_name)
        self.volumes = VolumeManager(self)
        self.local_storage = LocalStorage(self)
        self.status = NodeStatus(self, lease_interval, status_interval, kubelet_version)
        self.workers: dict[str, PodWorker] = {}
        self.epoch = 0  # bumped when the server is back: workers write their status again
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={node_name}")
        self.services_informer = Informer(client, SERVICES)
        self._network_ready = asyncio.Event()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._adopted: dict[str, list[ContainerState]] = {}
        self.network_services: Any = None  # proxy, DNS, NetworkPolicy, ingress (sampan/node/netservices.py)
        self.metrics = ResourceMetrics(self)  # usage for metrics.k8s.io (`kubectl top`)
        self.sysctls = Allowlist(allowed_unsafe_sysctls)
        self.eviction: Any = None  # node-pressure eviction (an EvictionConfig turns it on)
        if eviction is not None:
            from sampan.node.evictionmanager import EvictionManager

            self.eviction = EvictionManager(self, eviction)

    @property
    def allocatable(self) -> dict[str, str]:
        return self.status.allocatable

    # -- start and stop ------------------------------------------------------------------
    async def start(self) -> None:
        for d in (self.pods_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        await self._import_images()
        try:
            containers = await self.runtime.list_containers()
        except Exception as exc:  # noqa: BLE001 - nothing to adopt
            log.warning("listing containers failed: %s", exc)
            containers = []
        for c in containers:
            self._adopted.setdefault(c.pod_uid, []).append(c)
        if self.network is not None:
            self._network_ready.set()
        # Run what the local file says first: this works without the server.
        for pod in await self.state.pods():
            self._ensure_worker(pod)
        await self.status.start()  # registers the node (retried in the background if the server is away)
        self._tasks.append(asyncio.create_task(self._wait_network(), name="agent network"))
        self.pods.add_handler(on_add=self._on_pod, on_update=lambda _o, n: self._on_pod(n), on_delete=self._on_gone)
        self.pods.start()
        self.services_informer.start()
        self._tasks.append(asyncio.create_task(self._reconcile_after_sync(), name="agent pod sync"))
        self._tasks.append(asyncio.create_task(self.metrics.run(), name="agent metrics"))
        if self.eviction is not None:
            self._tasks.append(asyncio.create_task(self.eviction.run(), name="agent eviction"))

    async def stop(self) -> None:
        """Stops the agent; the containers keep running (a new agent re-adopts them)."""
        if self.network_services is not None:
            await self.network_services.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)
        await self.status.stop()
        await self.pods.stop()
        await self.services_informer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.recorder.flush(), 2)
        await self.recorder.close()
        self.state.close()
        if self.close_client:
            await self.client.close()

    async def _import_images(self) -> None:
        drop = self.data_dir / "agent" / "images"
        if not drop.is_dir():
            return
        for path in sorted(drop.iterdir()):
            if path.suffix in (".tar", ".gz", ".tgz") or path.name.endswith(".tar.gz"):
                try:
                    refs = await self.images.import_archive(path)
                    log.info("imported %s: %s", path.name, ", ".join(refs))
                except Exception as exc:  # noqa: BLE001 - one bad tarball must not stop the node
                    log.warning("importing %s failed: %s", path, exc)

    async def _wait_network(self) -> None:
        if self._network_factory is None:
            return
        cidr = await self.status.wait_pod_cidr(self.pod_cidr_timeout)
        self.network = self._network_factory(cidr)
        self._network_ready.set()

    async def _reconcile_after_sync(self) -> None:
        """Pods the file knows but the server no longer has were deleted while we were away."""
        while not await self.pods.wait_for_sync(5):
            pass
        live = {p["metadata"]["uid"] for p in self.pods.list()}
        for uid, worker in list(self.workers.items()):
            if uid not in live:
                worker.remove()
        keep = set(self.workers)
        for uid, containers in self._adopted.items():
            if uid not in keep:
                for c in containers:  # leftovers of pods nobody runs any more
                    with contextlib.suppress(Exception):
                        await self.runtime.remove_container(c.id)
                    with contextlib.suppress(Exception):
                        await self.images.unmount_rootfs(c.id)
                with contextlib.suppress(Exception):
                    await self.runtime.remove_sandbox(uid)
        self._adopted.clear()

    # -- pods ----------------------------------------------------------------------------
    def _on_pod(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") != self.node_name:
            return
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is None:
            self._ensure_worker(pod)
        else:
            worker.update(pod)
        task = asyncio.create_task(self.state.put_pod(pod))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _on_gone(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.remove()

    def _ensure_worker(self, pod: Obj) -> PodWorker:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(self, pod, self._adopted.get(uid))
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                worker.finished = True  # finished before: nothing to run again
                # Without its containers this agent knows less than the stored status says.
                worker.frozen = not self._adopted.get(uid)
            self.workers[uid] = worker
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                worker.deleted = True
            worker.start()
        return worker

    async def forget(self, uid: str) -> None:
        self.workers.pop(uid, None)
        await self.state.delete_pod(uid)
        await self.state.set(f"net/{uid}", "")

    def admit(self, pod: Obj) -> tuple[str, str] | None:
        """Does the pod fit next to the pods already running here (requests vs allocatable)?"""
        from sampan.api.quantity import parse_quantity

        def requests(p: Obj, name: str) -> Any:
            spec = p.get("spec") or {}
            total = sum((parse_quantity(((c.get("resources") or {}).get("requests") or {}).get(name, "0")).amount
                         for c in spec.get("containers") or []), start=parse_quantity("0").amount)
            for c in spec.get("initContainers") or []:
                total = max(total, parse_quantity(((c.get("resources") or {}).get("requests") or {}).get(name, "0")).amount)
            return total

        refused = self.eviction.admit(pod) if self.eviction is not None else None
        if refused:
            return refused  # the node is under pressure
        refused = self.sysctls.refusal(pod)
        if refused:
            return refused
        uid = pod["metadata"]["uid"]
        active = [w.pod for u, w in self.workers.items() if u != uid and not w.finished and w.admitted]
        if len(active) + 1 > int(self.allocatable.get("pods", "110")):
            return "OutOfpods", "Pod was rejected: Node didn't have enough resource: pods"
        for name in ("cpu", "memory"):
            want = requests(pod, name)
            if not want:
                continue
            used = sum((requests(p, name) for p in active), start=parse_quantity("0").amount)
            cap = parse_quantity(self.allocatable.get(name, "0")).amount
            if used + want > cap:
                return (f"OutOf{name}", f"Pod was rejected: Node didn't have enough resource: {name}, requested: "
                        f"{int(want * (1000 if name == 'cpu' else 1))}, used: {int(used * (1000 if name == 'cpu' else 1))}, "
                        f"capacity: {int(cap * (1000 if name == 'cpu' else 1))}")
        return None

    # -- what workers ask for --------------------------------------------------------------
    async def get_object(self, kind: str, namespace: str, name: str) -> Obj | None:
        """From the server when it answers (and remembered), else the local copy; a read made
        less than OBJECT_FRESH_SECONDS ago (or under way) answers for the same object."""
        key, now = (kind, namespace, name), time.monotonic()
        fresh = self._fresh_objects.get(key)
        if fresh is not None and now - fresh[0] < OBJECT_FRESH_SECONDS:
            return await asyncio.shield(fresh[1])
        if len(self._fresh_objects) > 256:
            self._fresh_objects = {k: v for k, v in self._fresh_objects.items() if now - v[0] < OBJECT_FRESH_SECONDS}
        reading = asyncio.ensure_future(self._read_object(kind, namespace, name))
        self._fresh_objects[key] = (now, reading)
        try:
            return await asyncio.shield(reading)
        except Exception:  # noqa: BLE001 - the server did not answer: the local copy
            if self._fresh_objects.get(key, (0.0, None))[1] is reading:
                self._fresh_objects.pop(key, None)  # the next caller asks the server again
            return await self.state.get_object(kind, namespace, name)

    async def _read_object(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            obj = await self.client.get(KINDS[kind], name, namespace)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            await self.state.put_object(kind, namespace, name, None)
            return None
        obj.setdefault("kind", kind)
        await self.state.put_object(kind, namespace, name, obj)
        return obj

    def services(self) -> list[Obj]:
        return self.services_informer.list()

    def cluster_dns(self) -> str | None:
        if self.network_services is not None and self.network_services.dns_ip:
            return str(self.network_services.dns_ip)  # kube-dns ClusterIP: known before the Service is seen
        for name in ("kube-dns", "coredns"):
            svc = self.services_informer.get(f"kube-system/{name}")
            ip = ((svc or {}).get("spec") or {}).get("clusterIP")
            if ip and ip != "None":
                return str(ip)
        return None

    def resolv_conf(self, pod: Obj) -> str:
        from sampan.node.netservices import resolv_conf_for

        return resolv_conf_for(pod, self.cluster_dns())

    def hosts_file(self, pod: Obj, ip: str, hostname: str) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            with contextlib.suppress(OSError):
                return Path("/etc/hosts").read_text()  # the host's, as the kubelet does
        return envs.hosts_file(pod, ip, hostname)

    async def pod_network(self, pod: Obj) -> tuple[str, str]:
        uid = pod["metadata"]["uid"]
        if self.network is None and self._network_factory is None:
            return "", self.node_ip  # no pod network here (not root): pods share the host's
        stored = await self.state.get(f"net/{uid}")
        if stored:
            found = json.loads(stored)
            return found["netns"], found["ip"]
        if not await wait_event(self._network_ready, self.pod_cidr_timeout):
            raise RuntimeError(f"no pod CIDR for this node after {self.pod_cidr_timeout:g}s")
        if self.network is None:
            raise RuntimeError("this node has no pod network")
        mappings = [
            {"hostPort": p["hostPort"], "containerPort": p["containerPort"], "protocol": p.get("protocol", "TCP"),
             **({"hostIP": p["hostIP"]} if p.get("hostIP") else {})}
            for c in pod["spec"].get("containers") or [] for p in c.get("ports") or [] if p.get("hostPort")
        ]
        info = await self.network.setup(uid, pod["metadata"].get("namespace", "default"), pod["metadata"]["name"],
                                        mappings)
        await self.state.set(f"net/{uid}", json.dumps({"netns": info.netns_path, "ip": info.ip}))
        return info.netns_path, info.ip

    async def release_network(self, uid: str) -> None:
        if self.network is not None and await self.state.get(f"net/{uid}"):
            await self.network.teardown(uid)
        await self.state.set(f"net/{uid}", "")

    async def service_account_token(self, pod: Obj, audience: str | None, seconds: int) -> str:
        """A bound token from the TokenRequest API, renewed at 80% of its life (kept if offline)."""
        uid = pod["metadata"]["uid"]
        key = (uid, audience or "")
        cached = self._tokens.get(key)
        if cached and time.time() < cached[1]:
            return cached[0]
        sa = pod["spec"].get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {"name": sa},
                "spec": {"audiences": [audience] if audience else None, "expirationSeconds": max(seconds, 600),
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                                            "uid": uid}}}
        try:
            reply = await self.client.create(SERVICEACCOUNTS, body, pod["metadata"].get("namespace"),
                                             subresource="token")
        except Exception:
            if cached:
                return cached[0]
            raise
        token = reply["status"]["token"]
        self._tokens[key] = (token, time.time() + 0.8 * max(seconds, 600))
        return token

    def on_reconnect(self) -> None:
        """The server answers again: every worker reports its status (nothing restarts)."""
        self.epoch += 1
        for w in self.workers.values():
            w.wake.set()

"""This machine as a Node: registration, status (capacity from the machine, pressure
conditions, nodeInfo, addresses, images), the Lease heartbeat in kube-node-lease, and the
wait for node IPAM's podCIDR."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sampan.client.interface import LEASES, NODES, is_conflict, is_not_found
from sampan.node.podstatus import rfc3339
from sampan.node.simulated import arch, micro_time

if TYPE_CHECKING:
    from sampan.node.agent import NodeAgent

log = logging.getLogger(__name__)
Obj = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
RAW_ANNOTATION = "sampan.dev/runtime-isolation"


def meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            with contextlib.suppress(ValueError, IndexError):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            return Path(path).read_text().strip()
    return uuid.uuid4().hex


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def _os_image() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return "Linux"


class NodeStatus:
    def __init__(self, agent: NodeAgent, lease_interval: float, status_interval: float, kubelet_version: str) -> None:
        self.agent = agent
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self.kubelet_version = kubelet_version
        self.capacity = self._capacity()
        # Allocatable keeps the kubelet's default hard eviction threshold (memory.available 100Mi) aside.
        mem = max(0, int(self.capacity["memory"][:-2]) - 100 * 1024)
        self.allocatable = {**self.capacity, "memory": f"{mem}Ki"}
        self.uid = ""
        self.pod_cidr = ""
        self.lease: Obj | None = None
        self.online = False
        self._since: dict[str, str] = {}
        self._last_written = ""
        self._last_status_at = 0.0
        self._cidr = asyncio.Event()
        self._was_offline = False
        self._binary_version = ""
        self._task: asyncio.Task[None] | None = None

    def _capacity(self) -> dict[str, str]:
        data = self.agent.data_dir
        disk = shutil.disk_usage(data if data.exists() else "/")
        mem = meminfo().get("MemTotal", 0) // 1024
        return {"cpu": str(os.cpu_count() or 1), "memory": f"{mem}Ki", "pods": "110",
                "ephemeral-storage": f"{disk.total // 1024}Ki"}

    # -- the Node object -----------------------------------------------------------------
    def runtime_version(self) -> str:
        rt = self.agent.runtime
        version = getattr(rt, "version", "") or self._binary_version
        return f"{rt.name}://{version}"

    async def _detect_binary_version(self) -> None:
        """``runc version 1.1.5`` -> ``runc 1.1.5`` (what the oci runtime runs)."""
        binary = getattr(self.agent.runtime, "binary", None)
        if not binary:
            return
        with contextlib.suppress(Exception):
            proc = await asyncio.create_subprocess_exec(binary, "--version", stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.DEVNULL)
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
            words = out.decode().split("\n", 1)[0].split()
            if len(words) >= 3 and words[1] == "version":
                self._binary_version = f"{Path(words[0]).name} {words[2]}"

    def _conditions(self) -> list[Obj]:
        now = rfc3339()
        info = meminfo()
        disk = shutil.disk_usage(self.agent.data_dir if self.agent.data_dir.exists() else "/")
        memory_pressure = info.get("MemAvailable", 1 << 40) < 100 * 1024 * 1024
        disk_pressure = disk.free < disk.total * 0.10
        pid_pressure = False
        pressure = getattr(getattr(self.agent, "eviction", None), "conditions", None)
        if pressure is not None:  # the eviction manager's thresholds and transition period decide
            memory_pressure, disk_pressure = "MemoryPressure" in pressure, "DiskPressure" in pressure
            pid_pressure = "PIDPressure" in pressure
        raw = not getattr(self.agent.runtime, "isolates", True)
        ready_msg = "kubelet is posting ready status"
        if raw:
            ready_msg += ". WARNING: the raw runtime runs pods as host processes and isolates nothing"

        def cond(t: str, bad: bool, ok_reason: str, bad_reason: str, ok_msg: str, bad_msg: str, good: str = "False") -> Obj:
            status = ("True" if good == "False" else "False") if bad else good
            since = self._since.get(f"{t}={status}")
            if since is None:
                self._since = {k: v for k, v in self._since.items() if not k.startswith(t + "=")}
                since = self._since[f"{t}={status}"] = now
            return {"type": t, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": since,
                    "reason": bad_reason if bad else ok_reason, "message": bad_msg if bad else ok_msg}

        return [
            cond("MemoryPressure", memory_pressure, "KubeletHasSufficientMemory", "KubeletHasInsufficientMemory",
                 "kubelet has sufficient memory available", "kubelet has insufficient memory available"),
            cond("DiskPressure", disk_pressure, "KubeletHasNoDiskPressure", "KubeletHasDiskPressure",
                 "kubelet has no disk pressure", "kubelet has disk pressure"),
            cond("PIDPressure", pid_pressure, "KubeletHasSufficientPID", "KubeletHasInsufficientPID",
                 "kubelet has sufficient PID available", "kubelet has insufficient PID available"),
            cond("Ready", False, "KubeletReady", "KubeletNotReady", ready_msg, "", good="True"),
        ]

    def _images(self) -> list[Obj]:
        out = []
        with contextlib.suppress(Exception):
            for img in self.agent.images.list():
                names = list(img.repo_digests) + list(img.repo_tags)
                out.append({"names": names, "sizeBytes": img.size})
        return out[:50]

    def node_status(self) -> Obj:
        mid = _machine_id()
        return {
            "capacity": dict(self.capacity),
            "allocatable": dict(self.allocatable),
            "conditions": self._conditions(),
            "addresses": [{"type": "InternalIP", "address": self.agent.node_ip},
                          {"type": "Hostname", "address": self.agent.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": getattr(self.agent, "kubelet_port", 10250)}},
            "nodeInfo": {
                "machineID": mid, "systemUUID": str(uuid.UUID(mid[:32].ljust(32, "0"))) if len(mid) >= 32 else mid,
                "bootID": _boot_id(), "kernelVersion": platform.release(), "osImage": _os_image(),
                "containerRuntimeVersion": self.runtime_version(), "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": self.kubelet_version, "operatingSystem": "linux", "architecture": arch(),
            },
            "images": self._images(),
        }

    def node_object(self) -> Obj:
        name = self.agent.node_name
        annotations = {"node.alpha.kubernetes.io/ttl": "0",
                       "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
        if not getattr(self.agent.runtime, "isolates", True):
            annotations[RAW_ANNOTATION] = "none: the raw runtime runs pods as host processes"
        annotations.update(getattr(self.agent, "node_annotations", {}))  # e.g. its stream endpoint's pin
        labels = {"beta.kubernetes.io/arch": arch(), "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch(),
                  "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
        labels.update(getattr(self.agent, "node_labels", {}))
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": annotations},
                "spec": {}, "status": self.node_status()}

    # -- registration and heartbeats -----------------------------------------------------
    async def start(self) -> None:
        cidr = await self.agent.state.get("podCIDR")  # known from an earlier run: usable offline
        if cidr and not self.pod_cidr:
            self.pod_cidr = cidr
            self._cidr.set()
        if not self.kubelet_version:
            self.kubelet_version = await self._server_version()
        await self._detect_binary_version()
        try:
            # An unreachable server must not hold up the pods this node already runs.
            await asyncio.wait_for(self.register(), 15)
        except Exception as exc:  # noqa: BLE001 - the heartbeat loop keeps trying
            log.warning("registering node %s failed: %s", self.agent.node_name, exc)
            self._was_offline = True
        self._task = asyncio.create_task(self._loop(), name="node heartbeat")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _server_version(self) -> str:
        from sampan.api.schemas import KUBERNETES_VERSION

        major, minor = KUBERNETES_VERSION.split(".")[:2]
        with contextlib.suppress(Exception):
            info = await asyncio.wait_for(self.agent.client.request("GET", "/version"), 5)  # type: ignore[attr-defined]
            major, minor = str(info.get("major", major)), str(info.get("minor", minor)).rstrip("+")
        return f"v{major}.{minor}.0-sampan"

    async def register(self) -> None:
        client = self.agent.client
        try:
            node = await client.create(NODES, self.node_object())
        except Exception as exc:
            if not is_conflict(exc):
                raise
            node = await client.get(NODES, self.agent.node_name)
            meta = self.node_object()["metadata"]
            await client.patch(NODES, self.agent.node_name, {"metadata": {"labels": meta["labels"],
                                                                           "annotations": meta["annotations"]}}, "merge")
            node = await client.patch(NODES, self.agent.node_name, {"status": self.node_status()}, "merge",
                                      subresource="status")
        self.uid = node["metadata"]["uid"]
        self.online = True
        await self._take_cidr(node)
        await self.renew_lease()

    async def _take_cidr(self, node: Obj) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr and cidr != self.pod_cidr:
            self.pod_cidr = cidr
            await self.agent.state.set("podCIDR", cidr)
            self._cidr.set()

    async def wait_pod_cidr(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not self._cidr.is_set():
            with contextlib.suppress(Exception):
                await self._take_cidr(await self.agent.client.get(NODES, self.agent.node_name))
            if self._cidr.is_set() or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        if not self.pod_cidr:
            raise TimeoutError(f"node {self.agent.node_name} got no spec.podCIDR")
        return self.pod_cidr

    def _lease_body(self) -> Obj:
        name = self.agent.node_name
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uid}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION, "renewTime": micro_time()}}

    async def renew_lease(self) -> None:
        client, name = self.agent.client, self.agent.node_name
        for _ in range(2):
            if self.lease is None:
                try:
                    self.lease = await client.get(LEASES, name, LEASE_NAMESPACE)
                except Exception as exc:
                    if not is_not_found(exc):
                        raise
                    self.lease = await client.create(LEASES, self._lease_body(), LEASE_NAMESPACE)
                    return
            lease = self.lease
            body = {**lease, "spec": {**lease.get("spec", {}), "holderIdentity": name, "renewTime": micro_time()}}
            try:
                self.lease = await client.update(LEASES, body)
                return
            except Exception as exc:
                if not (is_conflict(exc) or is_not_found(exc)):
                    raise
                self.lease = None

    async def post_status(self, force: bool = False) -> None:
        status = self.node_status()
        # Heartbeat times change every time: compare what else changed.
        key = repr({**status, "conditions": [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                                              for c in status["conditions"]]})
        if not force and key == self._last_written and time.monotonic() - self._last_status_at < self.status_interval:
            return
        await self.agent.client.patch(NODES, self.agent.node_name, {"status": status}, "merge", subresource="status")
        self._last_written, self._last_status_at = key, time.monotonic()

    async def _collect_images(self) -> None:
        """Under disk pressure, unused images go until 20% of the disk is free (image GC)."""
        if getattr(self.agent, "eviction", None) is not None:
            return  # the eviction manager collects images (sampan/node/evictionmanager.py)
        disk = shutil.disk_usage(self.agent.data_dir if self.agent.data_dir.exists() else "/")
        if disk.free >= disk.total * 0.10 or not hasattr(self.agent.images, "gc"):
            return
        try:
            freed = await self.agent.images.gc(int(disk.total * 0.20) - disk.free)
            log.warning("disk pressure: image garbage collection freed %s bytes", freed)
        except Exception as exc:  # noqa: BLE001 - tried again at the next beat
            log.warning("image garbage collection failed: %s", exc)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_interval if self.online else min(self.lease_interval, 2.0))
            try:
                if not self.uid:
                    await self.register()
                else:
                    await self.renew_lease()
                    await self.post_status(force=not self.online)
                    await self._collect_images()
                if self._was_offline:
                    log.info("server reachable again")
                    self._was_offline = False
                    self.agent.on_reconnect()
                self.online = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - server away: pods keep running from the local file
                if self.online:
                    log.warning("node heartbeat failed (running from local state): %s", exc)
                self.online = False
                self._was_offline = True
                self.lease = None


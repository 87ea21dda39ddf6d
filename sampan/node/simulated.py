"""``sampan agent --simulate N``: N simulated nodes played by one process, like KWOK.

Each node is registered with a realistic status and keeps its Lease in ``kube-node-lease``
fresh (every 10 s, like the kubelet; node status every 5 minutes or when it changed). Pods
bound to these nodes are reported Running at once; Job pods and pods that say so finish; pods
being deleted are removed for good. Nothing runs: this is for scale tests of everything above
the node.

To stay cheap at thousands of nodes: one HTTP client (one connection pool), one pod informer
indexed by node name, one node informer, and lease renewals spread evenly over the renewal
interval instead of all at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import platform
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sampan.client.informer import Informer, by_node_name
from sampan.client.interface import LEASES, NODES, PODS, Client, Obj, is_conflict, is_not_found
from sampan.node.simulated_pods import PodAddresses, now_time
from sampan.node.simulated_podsync import NODE_NAME_INDEX, PodSync

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
SIMULATED_LABEL = "type"
SIMULATED_VALUE = "simulated"
NODE_ADDRESSES = ipaddress.ip_network("198.18.0.0/15")


def micro_time(when: datetime | None = None) -> str:
    """metav1.MicroTime as upstream writes it (Lease renewTime)."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass
class SimulatedOptions:
    count: int
    name_prefix: str = "sim-"
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    # Pod addresses come from the node's spec.podCIDR (node IPAM); until it has one, from a block
    # of this range (a /24 when N nodes fit).
    cluster_cidr: str = "10.42.0.0/16"
    lease_duration: int = 40
    renew_interval: float = 10.0
    status_interval: float = 300.0
    job_duration: float = 1.0
    pod_workers: int = 16
    max_in_flight: int = 64
    # Heartbeats in flight at once: a real kubelet's renewal never waits for another node's,
    # so a slow server must not stretch N nodes' renewals past the lease duration. One per
    # node at most (a renewal still in flight skips the next beat).
    heartbeats_in_flight: int = 0  # 0: max(max_in_flight, count // 10)
    kubelet_version: str = ""


def pod_cidr_for(index: int, count: int, cluster_cidr: str) -> str:
    """Node ``index``'s block: /24s of the cluster CIDR, smaller blocks when N nodes need them."""
    network = ipaddress.ip_network(cluster_cidr, strict=False)
    bits = max(0, math.ceil(math.log2(max(count, 1))))
    prefix = min(max(24, network.prefixlen + bits), network.max_prefixlen - 2)
    blocks = 1 << max(0, prefix - network.prefixlen)
    base = int(network.network_address) + (index % blocks) * (1 << (network.max_prefixlen - prefix))
    return f"{ipaddress.ip_address(base)}/{prefix}"


def heartbeat_slots(options: SimulatedOptions) -> int:
    return options.heartbeats_in_flight or max(options.max_in_flight, options.count // 10)


class SimulatedAgent:
    def __init__(self, client: Client, options: SimulatedOptions) -> None:
        self.client = client
        self.options = options
        self.names = [f"{options.name_prefix}{i}" for i in range(options.count)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.uids: dict[str, str] = {}
        self.leases: dict[str, Obj] = {}  # the lease as last written, for the next renewal
        self.addresses: dict[str, PodAddresses] = {}
        self.ready_since: dict[str, str] = {}
        self.pods = Informer(client, PODS)
        self.pods.add_indexer(NODE_NAME_INDEX, by_node_name)
        self.nodes = Informer(client, NODES, label_selector=f"{SIMULATED_LABEL}={SIMULATED_VALUE}")
        self.podsync = PodSync(self)
        self._limit = asyncio.Semaphore(options.max_in_flight)
        self._beats = asyncio.Semaphore(heartbeat_slots(options))
        self._tasks: list[asyncio.Task[Any]] = []
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._busy: set[str] = set()
        self._status_due: list[float] = []

    # -- what a node looks like ------------------------------------------------------
    def node_ip(self, name: str) -> str:
        return str(NODE_ADDRESSES[(self.index[name] + 1) % NODE_ADDRESSES.num_addresses])

    def node_status(self, name: str) -> Obj:
        o = self.options
        resources = {"cpu": o.cpu, "memory": o.memory, "pods": str(o.pods), "ephemeral-storage": o.ephemeral_storage}
        now = now_time()
        since = self.ready_since.setdefault(name, now)

        def cond(type_: str, status: str, reason: str, message: str) -> Obj:
            return {"type": type_, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": since,
                    "reason": reason, "message": message}

        ident = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.sampan.simulated"))
        return {
            "capacity": resources,
            "allocatable": dict(resources),
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                     "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": self.node_ip(name)}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": ident.replace("-", ""),
                "systemUUID": ident,
                "bootID": str(uuid.uuid5(uuid.NAMESPACE_OID, ident + self.ready_since[name])),
                "kernelVersion": platform.release(),
                "osImage": "Sampan simulated node",
                "containerRuntimeVersion": "simulated://1.0.0",
                "kubeletVersion": o.kubelet_version,
                "kubeProxyVersion": o.kubelet_version,
                "operatingSystem": "linux",
                "architecture": arch(),
            },
        }

    def node_labels(self, name: str) -> dict[str, str]:
        return {
            "beta.kubernetes.io/arch": arch(),
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch(),
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            SIMULATED_LABEL: SIMULATED_VALUE,
        }

    def node_object(self, name: str) -> Obj:
        # No spec.podCIDR: node IPAM assigns it, as for a kubelet.
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": self.node_labels(name),
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "status": self.node_status(name),
        }

    def host_ip(self, node: str) -> str:
        return self.node_ip(node)

    def pod_addresses(self, node: str) -> PodAddresses:
        """Addresses from the node's spec.podCIDR (node IPAM's), else from our own block of the
        cluster CIDR; pods started before IPAM got to the node keep theirs."""
        cidr = ((self.nodes.get(node) or {}).get("spec") or {}).get("podCIDR") or pod_cidr_for(
            self.index[node], self.options.count, self.options.cluster_cidr
        )
        found = self.addresses.get(node)
        if found is None or found.network != ipaddress.ip_network(cidr, strict=False):
            found = self.addresses[node] = PodAddresses(cidr)
        return found

    # -- registration ------------------------------------------------------------------
    async def _register(self, name: str) -> None:
        async with self._limit:
            try:
                node = await self.client.create(NODES, self.node_object(name))
            except Exception as exc:
                if not is_conflict(exc):
                    raise
                node = await self._reregister(name)
            self.uids[name] = node["metadata"]["uid"]
            await self._ensure_lease(name)

    async def _reregister(self, name: str) -> Obj:
        """The node exists (an earlier run): take it over again, status and labels."""
        existing = await self.client.get(NODES, name)
        ready = next((c for c in existing.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"), {})
        if ready.get("status") == "True" and ready.get("lastTransitionTime"):
            self.ready_since[name] = ready["lastTransitionTime"]
        await self.client.patch(NODES, name, {"metadata": {"labels": self.node_labels(name)}}, "merge")
        return await self.client.patch(NODES, name, {"status": self.node_status(name)}, "merge", subresource="status")

    def _lease_object(self, name: str) -> Obj:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uids[name]}],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": self.options.lease_duration,
                "renewTime": micro_time(),
            },
        }

    async def _ensure_lease(self, name: str) -> None:
        try:
            self.leases[name] = await self.client.create(LEASES, self._lease_object(name), LEASE_NAMESPACE)
        except Exception as exc:
            if not is_conflict(exc):
                raise
            await self._renew(name)

    async def _renew(self, name: str) -> None:
        """Like the kubelet: PUT the lease we last wrote with a new renewTime (cheaper for the
        server than a patch); read it again only when someone else changed it."""
        for _ in range(2):
            lease = self.leases.get(name)
            if lease is None:
                try:
                    lease = await self.client.get(LEASES, name, LEASE_NAMESPACE)
                except Exception as exc:
                    if not is_not_found(exc):
                        raise
                    self.leases[name] = await self.client.create(LEASES, self._lease_object(name), LEASE_NAMESPACE)
                    return
            # managedFields stay as they are when left out: less to send and for the server to check.
            meta = {k: v for k, v in lease.get("metadata", {}).items() if k != "managedFields"}
            spec = {**lease.get("spec", {}), "holderIdentity": name, "renewTime": micro_time()}
            body = {**lease, "metadata": meta, "spec": spec}
            try:
                self.leases[name] = await self.client.update(LEASES, body)
                return
            except Exception as exc:
                if not (is_conflict(exc) or is_not_found(exc)):
                    raise
                self.leases.pop(name, None)

    async def _post_status(self, name: str) -> None:
        await self.client.patch(NODES, name, {"status": self.node_status(name)}, "merge", subresource="status")

    # -- the heartbeat loop ------------------------------------------------------------
    def _spawn(self, key: str, work: Any) -> None:
        """Run one heartbeat write in the background, at most one per node and kind at a time."""
        if key in self._busy:
            work.close()
            return
        self._busy.add(key)

        async def run() -> None:
            try:
                async with self._beats:
                    await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next beat retries
                log.warning("%s failed: %s", key, exc)
            finally:
                self._busy.discard(key)

        task = asyncio.create_task(run())
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _heartbeats(self) -> None:
        """Every node renews its lease once per interval, spread over ``slots`` ticks."""
        loop = asyncio.get_running_loop()
        o = self.options
        tick = max(0.05, min(0.2, o.renew_interval / 50))
        slots = max(1, round(o.renew_interval / tick))
        start = loop.time()
        # Stagger the periodic status updates as well, so they never come all at once.
        count = max(len(self.names), 1)
        self._status_due = [start + o.status_interval * (i + 1) / count for i in range(len(self.names))]
        slot = 0
        while True:
            await asyncio.sleep(max(0.0, start + (slot + 1) * tick - loop.time()))
            slot += 1
            now = loop.time()
            for i in range(slot % slots, len(self.names), slots):
                name = self.names[i]
                if name not in self.uids:
                    continue  # not registered yet (registering thousands of nodes takes a while)
                self._spawn(f"lease {name}", self._renew(name))
                if self._status_due[i] <= now:
                    self._status_due[i] = now + o.status_interval
                    self._spawn(f"status {name}", self._post_status(name))

    def _on_node(self, _old: Obj | None, node: Obj) -> None:
        """Someone else marked one of our live nodes not ready (a missed beat): set it right."""
        name = node["metadata"]["name"]
        if name not in self.uids:
            return  # not ours, or not registered yet
        ready = next((c for c in node.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"), {})
        if ready.get("status") != "True":
            self.ready_since[name] = now_time()
            self._spawn(f"status {name}", self._post_status(name))
            self.podsync.resync_node(name)  # node lifecycle marked its pods not ready too

    def _on_node_deleted(self, node: Obj) -> None:
        """A deleted node stays deleted (until the agent restarts): no more heartbeats for it."""
        name = node["metadata"]["name"]
        if self.uids.get(name) == node["metadata"].get("uid"):
            self.uids.pop(name, None)
            self.leases.pop(name, None)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Registers every node and its lease, then starts heartbeats and pod handling."""
        if not self.options.kubelet_version:
            self.options.kubelet_version = await self._server_version()
        self.nodes.add_handler(
            on_add=lambda n: self._on_node(None, n), on_update=self._on_node, on_delete=self._on_node_deleted
        )
        self.nodes.start()
        # Beat from the start: the first nodes must not go silent while the last ones register.
        self._tasks.append(asyncio.create_task(self._heartbeats(), name="simulated heartbeats"))
        await asyncio.gather(*(self._register(name) for name in self.names))
        await self.nodes.wait_for_sync(30)
        await self.podsync.start()
        self._tasks.append(asyncio.create_task(self.podsync.run(), name="simulated pods"))

    async def _server_version(self) -> str:
        """The kubelet version matches the server's minor, as a real cluster's would."""
        from sampan.api.schemas import KUBERNETES_VERSION

        try:
            info = await self.client.request("GET", "/version")  # type: ignore[attr-defined]
            major, minor = str(info.get("major", "1")), str(info.get("minor", "")).rstrip("+")
            if minor.isdigit():
                return f"v{major}.{minor}.0"
        except Exception as exc:  # noqa: BLE001 - in-process clients have no /version
            log.debug("no /version: %s", exc)
        return f"v{KUBERNETES_VERSION}"

    async def stop(self) -> None:
        """Just stops: no deregistration, so the leases lapse and the nodes go NotReady."""
        self.podsync.stop()
        tasks = self._tasks + list(self._in_flight)
        self._tasks = []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pods.stop()
        await self.nodes.stop()



async def run_simulated(kubeconfig: str, options: SimulatedOptions) -> None:
    """The ``sampan agent --simulate`` process: register, say ready, beat until SIGTERM."""
    import signal

    from sampan.client.http import HttpClient

    # Room for every heartbeat in flight, every pod worker and the two watches.
    pool = max(options.max_in_flight, heartbeat_slots(options)) + options.pod_workers + 4
    client = HttpClient.from_kubeconfig(kubeconfig, pool_size=pool)
    agent = SimulatedAgent(client, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
        span = agent.names[0] if len(agent.names) == 1 else f"{agent.names[0]} .. {agent.names[-1]}"
        print(f"sampan agent ready: {len(agent.names)} simulated nodes ({span})", flush=True)
        await stop.wait()
    finally:
        await agent.stop()
        await client.close()

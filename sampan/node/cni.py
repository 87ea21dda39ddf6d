"""Pod networking through the standard CNI plugins (Debian's containernetworking-plugins).

Each pod gets a named network namespace ``/run/netns/sampan-<uid[:12]>`` with ``lo`` up (made
with system calls, see namespaces.py: what ``ip netns add`` and the ``loopback`` plugin do,
without starting two programs per pod); inside it the ``bridge`` plugin (with ``host-local``
IPAM over the node's pod CIDR) adds ``eth0`` on the node bridge, and ``portmap`` publishes
hostPorts, chained on the bridge result as the CNI spec's ``prevResult``. What a pod was
given (the exact configs and results) is kept in ``state_dir`` so DEL runs with the same
configuration after an agent restart, as the spec asks.

Pods reach addresses outside the cluster through one node-wide masquerade rule in an nftables
table of our own (``nat_table``) instead of the bridge plugin's ``ipMasq``, which adds and
removes an iptables chain per pod (a fifth of a pod's network set-up, and slower the more
pods there are). Same effect: traffic from the node's pod CIDR to anything but the cluster
CIDR (the pod CIDR when no cluster CIDR is known) and multicast is masqueraded. The table
exists while this node has pod networks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

from sampan.node import namespaces, proc

log = logging.getLogger(__name__)

CNI_VERSION = "1.0.0"
NETNS_DIR = Path("/run/netns")
NETNS_PREFIX = "sampan-"
IFNAME = "eth0"
NAT_TABLE = "sampan-nat"
Conf = dict[str, Any]


@dataclass
class PodNetworkInfo:
    netns_path: str
    ip: str
    gateway: str


class CNIError(RuntimeError):
    """A plugin failed; ``code`` and ``msg`` are the spec's error fields."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"CNI {plugin} {command} failed ({code}): {msg}{': ' + details if details else ''}")
        self.plugin, self.command, self.code, self.msg, self.details = plugin, command, code, msg, details


async def _run(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    done = await proc.run(*argv, stdin=stdin, env=env)
    return done.code, done.out, done.err


def masq_chain(network: str, container_id: str) -> str:
    """The nat chain the bridge plugin's ipMasq creates (libcni's FormatChainName)."""
    return ("CNI-" + hashlib.sha512((network + container_id).encode()).hexdigest())[:28]


def masq_comment(network: str, container_id: str) -> str:
    return f"name: {json.dumps(network)} id: {json.dumps(container_id)}"


def normalise_port_mappings(port_mappings: list[dict]) -> list[Conf]:
    """Kubernetes container ports (or CNI portMappings) with a hostPort -> CNI portMappings."""
    out: list[Conf] = []
    for pm in port_mappings:
        host_port = int(pm.get("hostPort") or 0)
        if not host_port:
            continue
        entry: Conf = {
            "hostPort": host_port,
            "containerPort": int(pm.get("containerPort") or host_port),
            "protocol": str(pm.get("protocol") or "tcp").lower(),
        }
        if pm.get("hostIP"):
            entry["hostIP"] = pm["hostIP"]
        out.append(entry)
    return out


def result_address(result: Conf) -> tuple[str, str]:
    """The first IPv4 (else any) address and gateway of a CNI result."""
    ips = result.get("ips") or []
    ips = sorted(ips, key=lambda i: ipaddress.ip_interface(i["address"]).version)
    if not ips:
        raise CNIError("bridge", "ADD", 11, "result has no IP address")
    return str(ipaddress.ip_interface(ips[0]["address"]).ip), ips[0].get("gateway", "")


class PodNetwork:
    def __init__(
        self,
        node_pod_cidr: str,
        state_dir: Path,
        cni_bin_dir: Path = Path("/usr/lib/cni"),
        bridge: str = "sampan0",
        ipam_data_dir: Path | None = None,
        cluster_cidr: str | None = None,
        nat_table: str | None = NAT_TABLE,
    ) -> None:
        """``nat_table``: None (or no ``nft`` here) leaves masquerading to the bridge plugin's
        per-pod ``ipMasq``."""
        self.subnet = ipaddress.ip_network(node_pod_cidr, strict=False)
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=False) if cluster_cidr else self.subnet
        self.nat_table = nat_table if nat_table and shutil.which("nft") else None
        self._nat_lock = asyncio.Lock()
        self._nat_ready = False
        self.gateway = str(next(self.subnet.hosts()))
        self.state_dir = Path(state_dir)
        self.cni_bin_dir = Path(cni_bin_dir)
        self.bridge = bridge
        # The network name keys host-local's allocations and the plugins' iptables chains.
        self.network = "sampan" if bridge == "sampan0" else bridge
        self.ipam_data_dir = Path(ipam_data_dir) if ipam_data_dir else self.state_dir / "host-local"
        # The bridge plugin races with itself creating the bridge (and its address): one plugin
        # run at a time until a bridge ADD succeeded here, then pods are set up in parallel.
        self._lock = asyncio.Lock()
        self._bridge_ready = False
        self._pod_locks: dict[str, asyncio.Lock] = {}

    # -- paths and configs -------------------------------------------------------------
    @staticmethod
    def netns_name(pod_uid: str) -> str:
        return NETNS_PREFIX + pod_uid[:12]

    def netns_path(self, pod_uid: str) -> str:
        return str(NETNS_DIR / self.netns_name(pod_uid))

    def _state_file(self, pod_uid: str) -> Path:
        return self.state_dir / "pods" / f"{pod_uid}.json"

    def available(self) -> bool:
        return all((self.cni_bin_dir / p).is_file() for p in ("bridge", "host-local", "portmap"))

    def bridge_conf(self) -> Conf:
        return {
            "cniVersion": CNI_VERSION,
            "name": self.network,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": True,
            "ipMasq": self.nat_table is None,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": str(self.subnet), "gateway": self.gateway}]],
                "routes": [{"dst": "0.0.0.0/0" if self.subnet.version == 4 else "::/0"}],
                "dataDir": str(self.ipam_data_dir),
            },
        }

    def portmap_conf(self, mappings: list[Conf]) -> Conf:
        return {
            "cniVersion": CNI_VERSION,
            "name": self.network,
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "snat": True,
            "runtimeConfig": {"portMappings": mappings},
        }

    # -- plugin invocation --------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _plugins(self) -> AsyncIterator[None]:
        if self._bridge_ready:
            yield
            return
        async with self._lock:
            yield

    async def _invoke(self, command: str, conf: Conf, container_id: str, netns: str, ifname: str,
                      cni_args: str = "", prev_result: Conf | None = None) -> Conf:
        if prev_result is not None:
            conf = {**conf, "prevResult": prev_result}
        plugin = conf["type"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": cni_args,
            "CNI_PATH": str(self.cni_bin_dir),
        }
        code, out, err = await _run(str(self.cni_bin_dir / plugin), stdin=json.dumps(conf).encode(), env=env)
        if code != 0:
            try:
                body = json.loads(out)
            except ValueError:
                body = {"code": 999, "msg": (out or err).decode(errors="replace").strip()}
            raise CNIError(plugin, command, int(body.get("code", 999)), str(body.get("msg", "")),
                           str(body.get("details", "")))
        if command != "ADD" or not out.strip():
            return {}
        return json.loads(out)

    # -- the node-wide masquerade ---------------------------------------------------------
    def masquerade_ruleset(self) -> str:
        """One ``nft -f`` transaction that replaces the table atomically."""
        fam = "ip" if self.subnet.version == 4 else "ip6"
        multicast = "224.0.0.0/4" if fam == "ip" else "ff00::/8"
        t = self.nat_table
        return (f"table {fam} {t} {{}}\ndelete table {fam} {t}\n"
                f"table {fam} {t} {{\n chain postrouting {{\n"
                "  type nat hook postrouting priority srcnat; policy accept;\n"
                f"  {fam} saddr {self.subnet} {fam} daddr != {{ {self.cluster}, {multicast} }} masquerade\n"
                " }\n}\n")

    async def ensure_masquerade(self) -> None:
        """Programs the masquerade table (once per agent: a pod set up later finds it there)."""
        if self.nat_table is None or self._nat_ready:
            return
        async with self._nat_lock:
            if self._nat_ready:
                return
            code, out, err = await _run("nft", "-f", "-", stdin=self.masquerade_ruleset().encode())
            if code != 0:
                raise RuntimeError(f"nft: {(err or out).decode(errors='replace').strip()}")
            self._nat_ready = True

    async def remove_masquerade(self, only_if_unused: bool = False) -> None:
        """Deletes the table; ``only_if_unused``: only when no pod network is recorded here (under
        the lock, and a pod being set up records itself before it asks for the table)."""
        if self.nat_table is None:
            return
        async with self._nat_lock:
            # Listed and flagged in one step of the loop (a small directory): a pod recorded
            # after this finds the flag down and programs the table again.
            if only_if_unused and self._recorded_uids():
                return
            self._nat_ready = False
            fam = "ip" if self.subnet.version == 4 else "ip6"
            gone = f"table {fam} {self.nat_table} {{}}\ndelete table {fam} {self.nat_table}\n"
            await _run("nft", "-f", "-", stdin=gone.encode())

    # -- network namespaces -------------------------------------------------------------
    async def _add_netns(self, name: str) -> None:
        """The pod's netns with ``lo`` up; one already there (an earlier attempt) is kept."""
        try:
            await namespaces.create({"net": NETNS_DIR / name}, share=NETNS_DIR)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RuntimeError(f"cannot create netns {name}: {exc}") from exc

    async def _delete_netns(self, name: str) -> None:
        try:
            namespaces.remove(NETNS_DIR / name)
        except OSError as exc:
            raise RuntimeError(f"cannot delete netns {name}: {exc}") from exc

    # -- state --------------------------------------------------------------------------
    async def _save(self, pod_uid: str, state: Conf) -> None:
        def write() -> None:
            path = self._state_file(pod_uid)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, path)

        await asyncio.to_thread(write)

    async def _load(self, pod_uid: str) -> Conf | None:
        def read() -> Conf | None:
            try:
                return json.loads(self._state_file(pod_uid).read_text())
            except FileNotFoundError:
                return None
            except ValueError:
                log.warning("unreadable CNI state for pod %s; tearing down with current config", pod_uid)
                return None

        return await asyncio.to_thread(read)

    # -- the interface ------------------------------------------------------------------
    def _pod_lock(self, pod_uid: str) -> asyncio.Lock:
        return self._pod_locks.setdefault(pod_uid, asyncio.Lock())

    async def setup(self, pod_uid: str, namespace: str, name: str, port_mappings: list[dict]) -> PodNetworkInfo:
        """Creates the pod's netns (lo up) and runs bridge and (for hostPorts) portmap ADD."""
        try:
            async with self._pod_lock(pod_uid):
                return await self._setup(pod_uid, namespace, name, port_mappings)
        except Exception:
            await self.remove_masquerade(only_if_unused=True)
            raise

    async def _setup(self, pod_uid: str, namespace: str, name: str, port_mappings: list[dict]) -> PodNetworkInfo:
        state = await self._load(pod_uid)
        if state and state.get("complete") and Path(state["netns"]).exists():
            try:
                await self.check(pod_uid)
                return PodNetworkInfo(state["netns"], state["ip"], state["gateway"])
            except CNIError as exc:
                log.info("pod %s network no longer as set up (%s); setting it up again", pod_uid, exc)
        if state:
            await self._teardown(pod_uid)  # a half-done earlier attempt
        netns = self.netns_path(pod_uid)
        mappings = normalise_port_mappings(port_mappings)
        cni_args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_UID={pod_uid}"
        bridge = self.bridge_conf()
        portmap = self.portmap_conf(mappings) if mappings else None
        state = {"uid": pod_uid, "namespace": namespace, "name": name, "netns": netns, "cni_args": cni_args,
                 "bridge": bridge, "portmap": portmap, "result": None, "complete": False}
        # Saved before ADD so a crash part way still leaves what DEL needs.
        await self._save(pod_uid, state)
        try:
            await self.ensure_masquerade()
            await self._add_netns(self.netns_name(pod_uid))
            async with self._plugins():
                result = await self._invoke("ADD", bridge, pod_uid, netns, IFNAME, cni_args)
                self._bridge_ready = True
                state["result"] = result
                await self._save(pod_uid, state)
                if portmap is not None:
                    state["result"] = await self._invoke("ADD", portmap, pod_uid, netns, IFNAME, cni_args, result)
            ip, gateway = result_address(result)
        except BaseException:
            await asyncio.shield(self._teardown_quietly(pod_uid))
            raise
        state.update(ip=ip, gateway=gateway or self.gateway, complete=True)
        await self._save(pod_uid, state)
        return PodNetworkInfo(netns, ip, state["gateway"])

    async def check(self, pod_uid: str) -> None:
        """CNI CHECK of the pod's attachment; raises CNIError when it is not as set up. Only the
        bridge is checked: portmap 1.1.1's CHECK also wants IPv6 chains for an IPv4-only pod."""
        state = await self._load(pod_uid)
        if not state or not state.get("complete"):
            raise CNIError("bridge", "CHECK", 11, f"no network set up for pod {pod_uid}")
        async with self._plugins():
            prev = state["result"]
            await self._invoke("CHECK", state["bridge"], pod_uid, state["netns"], IFNAME, state["cni_args"], prev)

    async def teardown(self, pod_uid: str) -> None:
        """DEL in reverse order with the configs ADD used, then removes the netns. Idempotent."""
        async with self._pod_lock(pod_uid):
            await self._teardown(pod_uid)
        self._pod_locks.pop(pod_uid, None)
        await self.remove_masquerade(only_if_unused=True)

    async def _teardown(self, pod_uid: str) -> None:
        state = await self._load(pod_uid)
        netns_name = self.netns_name(pod_uid)
        if state is None:
            # Nothing recorded (e.g. state lost): DEL with today's config still frees the IP.
            state = {"netns": self.netns_path(pod_uid), "cni_args": "", "bridge": self.bridge_conf(),
                     "portmap": None, "result": None, "ip": None}
        netns = state["netns"] if Path(state["netns"]).exists() else ""
        prev = state.get("result") or None
        async with self._plugins():
            if state.get("portmap"):
                await self._invoke("DEL", state["portmap"], pod_uid, netns, IFNAME, state["cni_args"], prev)
            await self._invoke("DEL", state["bridge"], pod_uid, netns, IFNAME, state["cni_args"], prev)
            if not netns and state["bridge"].get("ipMasq"):
                # Without the netns the bridge plugin cannot find the address to unmasquerade.
                await self._remove_masq(state["bridge"]["name"], pod_uid, state.get("ip"))
        # No loopback DEL (it only takes lo down): the netns goes now.
        await self._delete_netns(netns_name)
        await asyncio.to_thread(self._state_file(pod_uid).unlink, True)

    async def _teardown_quietly(self, pod_uid: str) -> None:
        try:
            await self._teardown(pod_uid)
        except Exception:
            log.exception("cleaning up the network of pod %s after a failed setup", pod_uid)

    async def _remove_masq(self, network: str, container_id: str, ip: str | None) -> None:
        chain, comment = masq_chain(network, container_id), masq_comment(network, container_id)
        code, out, _ = await _run("iptables", "-t", "nat", "-S", "POSTROUTING")
        if code != 0:
            return
        for line in out.decode().splitlines():
            if f"-j {chain}" in line and line.startswith("-A POSTROUTING"):
                source = line.split("-s ", 1)[1].split()[0] if "-s " in line else (f"{ip}/32" if ip else "")
                if source:
                    await _run("iptables", "-t", "nat", "-D", "POSTROUTING", "-s", source,
                               "-m", "comment", "--comment", comment, "-j", chain)
        await _run("iptables", "-t", "nat", "-F", chain)
        await _run("iptables", "-t", "nat", "-X", chain)

    async def cleanup_stale(self, keep: set[str]) -> list[str]:
        """Tears down every pod network this object's network set up whose pod uid is not in
        ``keep``: pods recorded in ``state_dir`` and addresses held in host-local's store (a netns
        is only touched through its pod's uid, so other networks on the host are left alone).
        Returns the uids torn down."""
        recorded = await asyncio.to_thread(self._recorded_uids)
        allocated = await asyncio.to_thread(self._allocated_ids)
        removed: list[str] = []
        for uid in sorted((recorded | allocated) - keep):
            try:
                await self.teardown(uid)
                removed.append(uid)
            except (CNIError, RuntimeError, OSError) as exc:
                log.warning("stale pod network %s: %s", uid, exc)
        return removed

    def _recorded_uids(self) -> set[str]:
        pods = self.state_dir / "pods"
        return {p.stem for p in pods.glob("*.json")} if pods.is_dir() else set()

    def _allocated_ids(self) -> set[str]:
        """Container ids holding an address in host-local's store (first line of each IP file)."""
        ids: set[str] = set()
        store = self.ipam_data_dir / self.network
        if not store.is_dir():
            return ids
        for path in store.iterdir():
            try:
                ipaddress.ip_address(path.name)
                ids.add(path.read_text().splitlines()[0].strip())
            except (ValueError, IndexError, OSError):
                continue
        return ids


"""``sampan killall``: removes everything a stopped node left running on this machine.

Pods outlive ``sampan server`` and ``sampan agent`` on purpose (an agent restart re-adopts them).
To take a node down for good (like K3s' killall script) this stops every container of the data
directory and removes its sandboxes (namespaces, PID holders), pod networks (CNI DEL, network
namespaces, addresses), root filesystem and volume mounts, cgroups, the nftables tables of the
service proxy, NetworkPolicy and masquerade, the pod bridge when nothing is left on it, and the
node's helper programs still running for the data directory (conmon, nginx, PID holders, shims).
Pods' data (volumes, logs, images) stays. Containers of the oci runtime are stopped; the raw
runtime's host processes are not."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from sampan.node import namespaces, proc
from sampan.node.images.mounts import mount_points

log = logging.getLogger(__name__)
BRIDGE = "sampan0"
TABLE_PREFIX = "sampan-"


def running_node(data_dir: Path, default: bool) -> int | None:
    """The pid of a ``sampan server``/``agent`` still using ``data_dir``, if any."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            words = [a.decode(errors="replace") for a in argv]
            if not any(w.endswith("sampan") for w in words[:3]) or not {"server", "agent"} & set(words):
                continue
            given = words[words.index("--data-dir") + 1] if "--data-dir" in words[:-1] else None
            if (given is None and default) or (given and Path(given).resolve() == data_dir.resolve()):
                return int(entry)
    return None


def _pod_cidr(cni_state: Path) -> str:
    """The node's pod CIDR as recorded with its pod networks (only the address family matters)."""
    for path in sorted((cni_state / "pods").glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError):
            return str(json.loads(path.read_text())["bridge"]["ipam"]["ranges"][0][0]["subnet"])
    return "10.42.0.0/24"


# The node's helper programs; only these are swept (a user's editor or shell showing a path
# under the data directory is left alone).
HELPERS = (b"conmon", b"nginx", b"unshare", b"sampan.node.runtimes.shim")


def _kill_helpers(data_dir: Path) -> int:
    """SIGKILL to helpers still running for this data directory (monitors, nginx, PID holders)."""
    needle, killed = str(data_dir.resolve()).encode(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                # nginx retitles itself "nginx: master process ...": the first word names it.
                program = [os.path.basename(argv[0].split(b" ")[0]).rstrip(b":"), *argv[1:3]]
                if needle in b"\0".join(argv) and any(p in HELPERS for p in program):
                    children = Path(f"/proc/{entry}/task/{entry}/children").read_text().split()
                    for pid in [int(entry), *map(int, children)]:  # nginx's workers with their master
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed


def _unmount_below(data_dir: Path) -> int:
    root = str(data_dir.resolve())
    below = [t for t in mount_points() if t == root or t.startswith(root + "/")]
    for target in sorted(below, key=len, reverse=True):
        with contextlib.suppress(OSError):
            namespaces.unmount(target)
    return len(below)


async def _nft_tables() -> list[tuple[str, str]]:
    done = await proc.run("nft", "list", "tables")
    pairs = [line.split()[1:3] for line in done.out.decode().splitlines() if line.startswith("table ")]
    return [(family, name) for family, name in pairs if name.startswith(TABLE_PREFIX)]


async def killall(data_dir: Path) -> dict[str, int]:
    """Does it; returns how many of each kind of thing went."""
    from sampan.node.cgroups import Cgroups
    from sampan.node.cni import PodNetwork
    from sampan.node.images import ImageStore, store_root
    from sampan.node.runtimes.common import SANDBOXES
    from sampan.node.runtimes.oci import OciRuntime

    agent_dir = data_dir / "agent"
    done: dict[str, int] = {}
    cgroups = Cgroups()
    runtime = OciRuntime(agent_dir / "runtime", cgroups=cgroups) if (agent_dir / "runtime").is_dir() else None
    images = ImageStore(store_root(data_dir))
    containers = await runtime.list_containers() if runtime is not None else []
    for c in containers:
        with contextlib.suppress(Exception):
            await runtime.stop_container(c.id, 0)
        with contextlib.suppress(Exception):
            await runtime.remove_container(c.id)
        with contextlib.suppress(Exception):
            await images.unmount_rootfs(c.id)
    done["containers"] = len(containers)
    sandboxes = [p.name for p in (agent_dir / "runtime" / SANDBOXES).glob("*") if p.is_dir()]
    for uid in sandboxes if runtime is not None else []:
        with contextlib.suppress(Exception):
            await runtime.remove_sandbox(uid)
    done["sandboxes"] = len(sandboxes)
    cni_state = agent_dir / "cni"
    if cni_state.is_dir():
        network = PodNetwork(_pod_cidr(cni_state), cni_state)
        done["pod networks"] = len(await network.cleanup_stale(set()))
        await network.remove_masquerade()
    done["processes"] = _kill_helpers(data_dir)
    done["mounts"] = _unmount_below(data_dir)
    cgroups.remove(cgroups.root_name)
    tables = await _nft_tables()
    for family, name in tables:
        await proc.run("nft", "delete", "table", family, name)
    done["nftables tables"] = len(tables)
    attached = await proc.run("ip", "-o", "link", "show", "master", BRIDGE)
    if attached.code == 0 and not attached.out.strip():
        await proc.run("ip", "link", "delete", BRIDGE)
        done["bridges"] = 1
    return done

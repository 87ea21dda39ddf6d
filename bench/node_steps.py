"""CPU time of each step of a real pod's start and delete, one pod at a time.

    sudo python bench/node_steps.py [--pods N] [--masq]

Runs the node agent's pieces in this process on uvloop (no API server): the pod network (netns
+ CNI bridge), the sandbox namespaces, the pod cgroup, the overlay root filesystem, the
container (conmon + runc create/start), then stop and removal in the order the agent uses.
This process joins a cpuacct cgroup of its own, so a step's CPU time includes every program
it runs (and conmon, which leaves our process tree); the containers' own CPU is in their
pod cgroups and reported on its own. Kernel work in kworkers (netns cleanup) is not counted.
Pods use 198.18.250.0/24 on a bridge of their own; everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

import uvloop
from collections import defaultdict
from pathlib import Path
from typing import Any, Awaitable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampan.node.cgroups import Cgroups  # noqa: E402
from sampan.node.cni import PodNetwork  # noqa: E402
from sampan.node.images import ImageStore  # noqa: E402
from sampan.node.runtimes.base import ContainerConfig, Resources, SandboxConfig  # noqa: E402
from sampan.node.runtimes.oci import OciRuntime  # noqa: E402

CPUACCT = Path("/sys/fs/cgroup/cpuacct")
BRIDGE = "sampst0"
CIDR = "198.18.250.0/24"
SCRIPT = "trap 'exit 0' TERM; sleep 100000 & wait"


def usage(group: Path) -> float:
    try:
        return int((group / "cpuacct.usage").read_text()) / 1e6
    except OSError:
        return 0.0


class Steps:
    def __init__(self, group: Path) -> None:
        self.group = group
        self.ms: dict[str, list[float]] = defaultdict(list)

    async def __call__(self, name: str, work: Awaitable[Any]) -> Any:
        before = usage(self.group)
        result = await work
        self.ms[name].append(usage(self.group) - before)
        return result

    def table(self) -> dict[str, float]:
        return {k: round(statistics.mean(v), 2) for k, v in self.ms.items()}


async def run(tmp: Path, pods: int, masq: bool, group: Path) -> dict[str, Any]:
    from tests.node.images_util import busybox_image, write_docker_archive

    cg = Cgroups(f"sampan-steps-{uuid.uuid4().hex[:6]}")
    # --masq: the bridge plugin's per-pod ipMasq; else the node-wide nft rule (a table of our own).
    net = PodNetwork(CIDR, tmp / "cni", bridge=BRIDGE, nat_table=None if masq else f"sampan-steps-{os.getpid()}")
    rt = OciRuntime(tmp / "runtime", binary=shutil.which("runc") or "runc", runc_root=tmp / "runc", cgroups=cg)
    images = ImageStore(tmp / "images")
    write_docker_archive(tmp / "busybox.tar", busybox_image(cmd=["sh"]), ["busybox:steps"])
    await images.import_archive(tmp / "busybox.tar")
    info = images.get("busybox:steps")
    assert info is not None
    steps = Steps(group)
    pods_cpu = 0.0
    uids: list[str] = []
    try:
        for i in range(pods + 1):
            s = steps if i else Steps(group)  # the first pod creates the bridge: not counted
            uid = uuid.uuid4().hex
            uids.append(uid)
            qos = "BestEffort"
            parent = cg.pod_parent(uid, qos)
            await s("cgroup", cg.ensure_pod(uid, qos, Resources()))
            await net.ensure_masquerade()  # once per node
            await s("netns_add", net._add_netns(net.netns_name(uid)))
            netns = net.netns_path(uid)
            conf = net.bridge_conf()
            result = await s("cni_bridge_add", net._invoke("ADD", conf, uid, netns, "eth0"))
            await net._save(uid, {"netns": netns, "bridge": conf, "cni_args": "", "portmap": None,
                                  "result": result, "complete": True})
            sb = SandboxConfig(pod_uid=uid, namespace="default", name=f"p{i}", hostname=f"p{i}",
                               netns_path=netns, cgroup_parent=parent)
            await s("sandbox", rt.create_sandbox(sb))
            cid = f"{uid}-c-0"
            rootfs = await s("rootfs_mount", images.mount_rootfs(info, cid))
            cfg = ContainerConfig(id=cid, pod_uid=uid, name="c", rootfs=rootfs, args=["sh", "-c", SCRIPT],
                                  log_path=tmp / "logs" / f"{cid}.log")
            await s("container_start", rt.start_container(sb, cfg))
            await asyncio.sleep(0.2)  # the shell sets its TERM trap (a pod lives longer than this)
            await s("container_stop", rt.stop_container(cid, 30))
            await s("container_remove", rt.remove_container(cid))
            await s("rootfs_unmount", images.unmount_rootfs(cid))
            await s("sandbox_remove", rt.remove_sandbox(uid))
            await s("network_teardown", net.teardown(uid))
            if i == 0:
                pods_cpu = -usage(CPUACCT / cg.root_name)  # the containers' own CPU (runc init, sh)
            await s("cgroup_remove", cg.remove_pod(uid, qos))
        pods_cpu += usage(CPUACCT / cg.root_name)
    finally:
        with contextlib.suppress(Exception):
            await net.cleanup_stale(set())
        for uid in uids:
            await net._delete_netns(net.netns_name(uid))
        await net.remove_masquerade()
        for mount in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            target = mount.split()[4]
            if target.startswith(str(tmp)):
                os.system(f"umount -l {target}")
        os.system(f"ip link delete {BRIDGE} 2>/dev/null")
        cg.remove(cg.root_name)
    table = steps.table()
    start = [k for k in table if k in ("cgroup", "netns_add", "cni_bridge_add", "sandbox",
                                       "rootfs_mount", "container_start")]
    return {"ipMasq": masq, "pods": pods, "ms_per_step": table,
            "start_ms": round(sum(table[k] for k in start), 1),
            "delete_ms": round(sum(v for k, v in table.items() if k not in start), 1),
            "containers_ms": round(pods_cpu / max(pods, 1), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", type=int, default=10)
    p.add_argument("--masq", action="store_true", help="the bridge plugin's ipMasq on (per-pod iptables rules)")
    args = p.parse_args()
    if os.geteuid() != 0 or not shutil.which("runc") or not (CPUACCT / "cpuacct.usage").exists():
        raise SystemExit("needs root, runc and a cgroup v1 cpuacct hierarchy")
    group = CPUACCT / f"sampan-steps-{os.getpid()}"
    group.mkdir()
    (group / "cgroup.procs").write_text(str(os.getpid()))
    try:
        with tempfile.TemporaryDirectory(prefix="sampan-steps-") as d:
            out = uvloop.run(run(Path(d), args.pods, args.masq, group))  # the agent's loop
    finally:
        (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        time.sleep(0.2)
        with contextlib.suppress(OSError):
            group.rmdir()
    import json

    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

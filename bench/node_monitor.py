"""Per-container monitor cost of the oci runtime: conmon vs the Python shim.

    sudo python bench/node_monitor.py [--containers N]

For each monitor, starts N busybox `sleep` containers (runc, one pod sandbox, a test cgroup)
one after another through OciRuntime.start_container, and reports the start latency
(create + start, until the container's pid is known) and the memory of each container's
monitor process from /proc/<pid>/smaps_rollup (RSS and PSS: PSS splits shared pages, so it
is what N monitors really cost together). Everything is removed afterwards. Needs root,
runc, conmon and busybox-static.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampan.node.cgroups import Cgroups  # noqa: E402
from sampan.node.runtimes.base import ContainerConfig, Resources, SandboxConfig  # noqa: E402
from sampan.node.runtimes.oci import OciRuntime  # noqa: E402
from tests.node import busybox  # noqa: E402


def rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
            values[parts[0]] = int(parts[1])
    return values["Rss:"], values["Pss:"]


async def run(monitor: str, n: int, tmp: Path) -> dict[str, float]:
    cgroups = Cgroups(f"sampan-bench-{uuid.uuid4().hex[:8]}")
    runtime = OciRuntime(tmp / monitor / "containers", binary=shutil.which("runc") or "runc",
                         runc_root=tmp / monitor / "runc", cgroups=cgroups,
                         conmon=shutil.which("conmon") if monitor == "conmon" else None)
    rootfs = busybox.busybox_rootfs(tmp / monitor / "rootfs")
    uid = uuid.uuid4().hex
    parent = cgroups.pod_parent(uid, "Burstable")
    await cgroups.ensure_pod(uid, "Burstable", Resources(cpu_shares=1024))
    sb = SandboxConfig(pod_uid=uid, namespace="default", name="bench", hostname="bench", cgroup_parent=parent)
    await runtime.create_sandbox(sb)
    latencies: list[float] = []
    mem: list[tuple[int, int]] = []
    try:
        for i in range(n):
            cfg = ContainerConfig(id=f"{uid[:8]}-c{i}-0", pod_uid=uid, name=f"c{i}", rootfs=rootfs,
                                  args=["sleep", "3600"], log_path=tmp / monitor / "logs" / f"c{i}.log")
            t0 = time.perf_counter()
            await runtime.start_container(sb, cfg)
            latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(1.0)  # let every monitor settle into its steady state
        for st in await runtime.list_containers():
            started = json.loads((runtime.state_dir / st.id / "started.json").read_text())
            mem.append(rollup(started["conmon_pid" if monitor == "conmon" else "shim_pid"]))
    finally:
        await runtime.remove_sandbox(uid)
        cgroups.remove(cgroups.root_name)
    return {
        "start_median_ms": statistics.median(latencies) * 1000, "start_mean_ms": statistics.mean(latencies) * 1000,
        "rss_kb": statistics.mean(r for r, _ in mem), "pss_kb": statistics.mean(p for _, p in mem),
        "pss_total_mb": sum(p for _, p in mem) / 1024, "monitors": len(mem),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sampan-bench-") as tmp:
        for monitor in ("shim", "conmon"):
            r = await run(monitor, args.containers, Path(tmp))
            print(f"{monitor:7s} monitors={r['monitors']} start median {r['start_median_ms']:.0f} ms "
                  f"(mean {r['start_mean_ms']:.0f}) | per monitor RSS {r['rss_kb'] / 1024:.1f} MB "
                  f"PSS {r['pss_kb'] / 1024:.2f} MB | PSS of all {r['pss_total_mb']:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())

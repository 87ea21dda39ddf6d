"""Real pods on one node: start latency, a 100-pod burst, deletion, and the node agent's memory.

    sudo python bench/node.py [--quick] [--sequential N] [--burst N]

Part 1 runs ``sampan server --no-agent`` and a separate ``sampan agent --server URL --token T``
(oci runtime: runc + conmon, CNI bridge, busybox image imported from a tarball), so the agent's
memory is its own: idle RSS once the node is Ready; N pods created one after another (create ->
phase Running seen on a watch; p50/p99); a burst of B pods created together (time until all
Running, p99 of each create -> Running); agent RSS/PSS + the sum of conmon PSS with B pods
(/proc/<pid>/smaps_rollup); deleting them all (time until the watch saw every pod gone).
For the burst and the deletion it also reports CPU milliseconds per pod (wall-clock numbers
mean little on a shared machine): the agent with every program it starts (a cpuacct cgroup of
its own; "agent_python" is the agent process alone), the containers ("pods": their cgroups)
and the API server, and the API requests per pod (the server's request counters).
Part 2 runs ``sampan server`` with its in-process agent and reports its idle RSS.
Pods: busybox ``sh`` that exits on SIGTERM around ``sleep`` (so deletion measures the agent, not
a grace period). Everything is removed afterwards. Needs root, runc, conmon, the CNI plugins and
busybox-static. Only one real-pod cluster may run at a time on a machine (the bridge sampan0 is
shared): the benchmark refuses to start while another ``sampan server`` with an agent runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_seconds, node_ready, start, stop  # noqa: E402
from sampan.client.http import HttpClient  # noqa: E402
from sampan.client.interface import PODS  # noqa: E402

NODE = "bench-node"
IMAGE = "busybox:bench"
NS = "default"
CIDRS = ["--cluster-cidr", "198.18.0.0/16", "--service-cidr", "198.19.0.0/16"]
SCRIPT = "trap 'exit 0' TERM; sleep 100000 & wait"


def rollup(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
            values[parts[0]] = int(parts[1])
    return values.get("Rss:", 0) / 1024, values.get("Pss:", 0) / 1024


def monitors_of(data: Path) -> list[int]:
    """The conmon processes of this node's containers."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"conmon") and any(str(data).encode() in a for a in cmd):
                found.append(int(pid))
    return found


class CpuMeter:
    """CPU seconds spent for the pods: the agent and every process it starts (CNI plugins, ip,
    unshare, conmon, runc) through a cpuacct cgroup of their own, the containers through the
    pods' cgroups (``sampan``), and the API server process. Wall-clock numbers are noisy when
    other work shares the cores; these are not (kernel work in kworkers is not counted)."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.group = self.ROOT / f"sampan-bench-{os.getpid()}"
        self.ok = (self.ROOT / "cpuacct.usage").exists()
        if self.ok:
            self.group.mkdir(exist_ok=True)

    def adopt(self, pid: int) -> None:
        self.agent_pid = pid  # its own CPU time (the Python part of "agent")
        if self.ok:
            (self.group / "cgroup.procs").write_text(str(pid))

    def _usage(self, group: Path) -> float:
        try:
            return int((group / "cpuacct.usage").read_text()) / 1e9
        except OSError:
            return 0.0

    def read(self) -> dict[str, float]:
        return {"agent": self._usage(self.group), "pods": self._usage(self.ROOT / "sampan"),
                "server": cpu_seconds(self.server_pid), "agent_python": cpu_seconds(self.agent_pid)}

    @staticmethod
    def per_pod(before: dict[str, float], after: dict[str, float], pods: int) -> dict[str, float]:
        return {k: round((after[k] - before[k]) * 1000 / pods, 1) for k in before}

    def close(self) -> None:
        if self.ok:
            for _ in range(50):
                try:
                    self.group.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


def request_counts(kubeconfig: Path) -> dict[str, int]:
    """The API server's request counters ("verb resource[/subresource]" -> count)."""
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
                         capture_output=True, text=True, timeout=60).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.rindex("}")].split(","))
            what = labels["verb"].strip('"') + " " + labels["resource"].strip('"')
            if labels.get("subresource", '""') != '""':
                what += "/" + labels["subresource"].strip('"')
            counts[what] = counts.get(what, 0) + int(line.rsplit(" ", 1)[1])
    return counts


def requests_per_pod(before: dict[str, int], after: dict[str, int], pods: int) -> dict[str, float]:
    diff = {k: (after.get(k, 0) - before.get(k, 0)) / pods for k in after}
    return {k: round(v, 2) for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v >= 0.05}


def other_real_cluster() -> str | None:
    out = subprocess.run(["pgrep", "-af", "sampan server"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "--no-agent" not in line and "pgrep" not in line and str(os.getpid()) != line.split()[0]:
            return line
    return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "node"}},
            "spec": {"containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", SCRIPT]}]}}


class Watcher:
    """One watch on the namespace's pods: when each pod was first seen Running, and when deleted."""

    def __init__(self, client: HttpClient, agent: Any = None) -> None:
        self.client = client
        self.agent = agent  # the agent process: a wait ends at once if it exits
        self.running: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        listed = await self.client.list(PODS, NS)
        rv = listed["metadata"]["resourceVersion"]
        while True:
            async for ev in self.client.watch(PODS, NS, resource_version=rv, timeout_seconds=600):
                obj = ev["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                if ev["type"] == "BOOKMARK":
                    continue
                name = obj["metadata"]["name"]
                now = time.monotonic()
                if ev["type"] == "DELETED":
                    self.gone.setdefault(name, now)
                elif (obj.get("status") or {}).get("phase") == "Running":
                    self.running.setdefault(name, now)
                self.changed.set()

    async def until(self, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.agent is not None and self.agent.poll() is not None:
                raise SystemExit(f"the node agent exited (code {self.agent.returncode}); its last lines:\n"
                                 + "".join(getattr(self.agent, "tail", [])))
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"timed out after {timeout:.0f} s")
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 5.0))
            except TimeoutError:
                pass


async def create_all(client: HttpClient, names: list[str]) -> dict[str, float]:
    began: dict[str, float] = {}
    limit = asyncio.Semaphore(20)  # the client's connection pool size, not a pacing

    async def one(name: str) -> None:
        async with limit:
            began[name] = time.monotonic()
            await client.create(PODS, pod(name), NS)

    await asyncio.gather(*(one(n) for n in names))
    return began


async def delete_all(client: HttpClient, w: Watcher, names: list[str], timeout: float) -> float:
    began = time.monotonic()
    limit = asyncio.Semaphore(20)

    async def one(name: str) -> None:
        async with limit:
            await client.delete(PODS, name, NS)

    await asyncio.gather(*(one(n) for n in names))
    await w.until(lambda: all(n in w.gone for n in names), timeout)
    return max(w.gone[n] for n in names) - began


async def pods_part(kubeconfig: Path, agent: Any, data: Path, seq: int, burst: int, settle: float,
                    meter: CpuMeter) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    client = HttpClient.from_kubeconfig(kubeconfig)
    w = Watcher(client, agent)
    agent_pid = agent.pid
    try:
        await node_ready(client, NODE, 90, interval=0.5)
        await asyncio.sleep(settle)
        rss, pss = rollup(agent_pid)
        out["agent_idle_rss_mb"], out["agent_idle_pss_mb"] = round(rss, 1), round(pss, 1)
        # Warm-up pod (first mount of the image, first CNI run): not counted.
        names = ["warm"] + [f"seq-{i}" for i in range(seq)]
        lat = []
        for name in names:
            t0 = time.monotonic()
            await client.create(PODS, pod(name), NS)
            await w.until(lambda n=name: n in w.running, 120)  # type: ignore[misc]
            if name != "warm":
                lat.append(w.running[name] - t0)
        out["one_pod_p50_s"] = round(statistics.median(lat), 3)
        out["one_pod_p99_s"] = round(pct(lat, 0.99), 3)
        out["one_pod_max_s"] = round(max(lat), 3)
        await delete_all(client, w, names, 120)

        names = [f"burst-{i}" for i in range(burst)]
        cpu0, req0 = meter.read(), await asyncio.to_thread(request_counts, kubeconfig)
        t0 = time.monotonic()
        began = await create_all(client, names)
        out["burst_created_s"] = round(time.monotonic() - t0, 2)
        await w.until(lambda: all(n in w.running for n in names), 600)
        out["burst_cpu_ms_per_pod"] = meter.per_pod(cpu0, meter.read(), burst)
        req1 = await asyncio.to_thread(request_counts, kubeconfig)
        out["burst_requests_per_pod"] = requests_per_pod(req0, req1, burst)
        each = [w.running[n] - began[n] for n in names]
        out["burst_all_running_s"] = round(max(w.running[n] for n in names) - t0, 2)
        out["burst_p50_s"] = round(statistics.median(each), 2)
        out["burst_p99_s"] = round(pct(each, 0.99), 2)
        await asyncio.sleep(settle)
        rss, pss = rollup(agent_pid)
        mons = monitors_of(data)
        mon_pss = sum(rollup(p)[1] for p in mons)
        out["with_pods_agent_rss_mb"], out["with_pods_agent_pss_mb"] = round(rss, 1), round(pss, 1)
        out["with_pods_conmon"], out["with_pods_conmon_pss_mb"] = len(mons), round(mon_pss, 1)
        out["with_pods_total_pss_mb"] = round(pss + mon_pss, 1)
        out["with_pods_total_rss_mb"] = round(rss + mon_pss, 1)
        cpu0, req0 = meter.read(), await asyncio.to_thread(request_counts, kubeconfig)
        out["delete_all_s"] = round(await delete_all(client, w, names, 300), 2)
        out["delete_cpu_ms_per_pod"] = meter.per_pod(cpu0, meter.read(), burst)
        out["delete_requests_per_pod"] = requests_per_pod(req0, await asyncio.to_thread(request_counts, kubeconfig),
                                                          burst)
    finally:
        w.task.cancel()
        await asyncio.gather(w.task, return_exceptions=True)
        await client.close()
    return out


def cleanup(data: Path) -> None:
    from tests.e2e.test_pods_real import _kill_leftovers

    _kill_leftovers(data)


def kubectl_delete_all(kubeconfig: Path, wait: bool = True) -> None:
    """``wait``: until the agent has removed them (not when it is gone: cleanup() does that)."""
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "delete", "pods", "--all", "-n", NS,
                    "--grace-period=1", f"--wait={str(wait).lower()}"], capture_output=True, timeout=300)


def image_tarball(drop: Path) -> None:
    from tests.node.images_util import busybox_image, write_docker_archive

    drop.mkdir(parents=True, exist_ok=True)
    write_docker_archive(drop / "busybox.tar", busybox_image(cmd=["sh"]), [IMAGE])


def separate_agent(tmp: Path, seq: int, burst: int, settle: float) -> dict[str, Any]:
    sdata, adata = tmp / "server", tmp / "node"
    image_tarball(adata / "agent" / "images")
    server, agent, meter = None, None, None
    try:
        server, _ = start(["server", "--data-dir", str(sdata), "--datastore", "sqlite", "--port", "0", "--no-agent",
                           *CIDRS], "sampan server ready", 120)
        kubeconfig = sdata / "kubeconfig.yaml"
        url = next(line.split()[-1] for line in kubeconfig.read_text().splitlines() if "server:" in line)
        token = (sdata / "server" / "join-token").read_text().strip()
        agent, _ = start(["agent", "--server", url, "--token", token, "--node-name", NODE, "--data-dir", str(adata),
                          "--runtime", "oci", *CIDRS], "sampan agent ready", 120)
        meter = CpuMeter(server.pid)
        meter.adopt(agent.pid)  # before any pod: everything it starts from now on is counted
        try:
            out = asyncio.run(pods_part(kubeconfig, agent, adata, seq, burst, settle, meter))
        finally:
            kubectl_delete_all(kubeconfig, wait=agent.poll() is None)
        return out
    finally:
        stop(agent, server)
        cleanup(adata)
        if meter is not None:
            meter.close()


def inprocess_agent(tmp: Path, settle: float) -> dict[str, Any]:
    data = tmp / "whole"
    image_tarball(data / "agent" / "images")
    proc = None
    try:
        proc, took = start(["server", "--data-dir", str(data), "--datastore", "sqlite", "--port", "0",
                            "--node-name", NODE, "--runtime", "oci", *CIDRS, "--disable", "ingress",
                            "--disable", "servicelb"], "sampan server ready", 120)

        async def idle() -> None:
            client = HttpClient.from_kubeconfig(data / "kubeconfig.yaml")
            try:
                await node_ready(client, NODE, 90, interval=0.5)
            finally:
                await client.close()
            await asyncio.sleep(settle)

        asyncio.run(idle())
        rss, pss = rollup(proc.pid)
        return {"server_with_agent_idle_rss_mb": round(rss, 1), "server_with_agent_idle_pss_mb": round(pss, 1)}
    finally:
        stop(proc)
        cleanup(data)


GOALS = {"one_pod_p99_s": 0.3, "burst_all_running_s": 5.0, "delete_all_s": 5.0, "agent_idle_rss_mb": 40.0,
         "with_pods_total_pss_mb": 150.0, "server_with_agent_idle_rss_mb": 100.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5 sequential pods, a burst of 20, short settling")
    p.add_argument("--sequential", type=int, default=20)
    p.add_argument("--burst", type=int, default=100)
    p.add_argument("--settle", type=float, default=10.0, help="seconds to wait before reading memory")
    p.add_argument("--skip-server", action="store_true", help="skip part 2 (server with in-process agent)")
    args = p.parse_args()
    if args.quick:
        args.sequential, args.burst, args.settle = 5, 20, 3.0
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    if (busy := other_real_cluster()) is not None:
        raise SystemExit(f"another sampan server with a node agent is running; try later:\n{busy}")
    with tempfile.TemporaryDirectory(prefix="sampan-bench-node-") as d:
        tmp = Path(d)
        result = separate_agent(tmp, args.sequential, args.burst, args.settle)
        if not args.skip_server:
            result.update(inprocess_agent(tmp, args.settle))
    result["goals_ratio"] = {k: round(result[k] / g, 2) for k, g in GOALS.items() if k in result}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

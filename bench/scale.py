"""Control plane at scale: a real ``sampan server --no-agent`` (SQLite) plus a real
``sampan agent --simulate N``; pods ramped in steps through Deployments created over HTTPS.

    python bench/scale.py [--nodes 5000] [--step 10000] [--max-pods 150000] [--minutes 25] [--quick]

Each step has two phases, like upstream's density test:
- saturation: ``step`` pods as Deployments of 100 replicas (namespaces of 2,000 pods), created
  as fast as the control plane takes them; time until all are Running (pods/s);
- latency: ``--latency-pods`` Deployments of 1 replica created at 5/s; pod startup latency is
  the time from the pod's ADDED watch event to the watch event where the simulated kubelet
  reports it Running (upstream SLO: p99 <= 5 s for stateless pods).
Throughout, a probe client measures API latency (upstream SLOs: mutating and get p99 <= 1 s,
namespace-scoped list p99 <= 5 s) and a node watch counts nodes that stop being Ready. After
each step: server and agent RSS. The ramp stops at the first broken SLO, a step that does not
finish within ``--step-limit`` s, ``--max-pods``, or after ``--minutes``.
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, rss_mb, start_server, start_simulated_nodes, stop  # noqa: E402
from sampan.client.http import HttpClient  # noqa: E402
from sampan.client.interface import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, NODES, PODS  # noqa: E402

PODS_PER_NAMESPACE = 2000
REPLICAS = 100
SLO = {"mutating": 1.0, "get": 1.0, "list": 5.0, "startup": 5.0}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def deployment(name: str, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"bench": "scale"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "bench": "scale"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }


@dataclass
class PodWatch:
    """Every bench pod's ADDED and Running times, from one watch over all namespaces."""

    added: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    async def run(self, client: HttpClient) -> None:
        rv = (await client.list(PODS, label_selector="bench=scale", limit=1))["metadata"]["resourceVersion"]
        while True:
            try:
                async for event in client.watch(PODS, label_selector="bench=scale", resource_version=rv,
                                                timeout_seconds=3600):
                    obj = event["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if event["type"] == "BOOKMARK":
                        continue
                    key = obj["metadata"]["uid"]
                    now = time.monotonic()
                    self.added.setdefault(key, now)
                    if key not in self.running and (obj.get("status") or {}).get("phase") == "Running":
                        self.running[key] = now
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - an expired watch: relist the version and go on
                self.errors += 1
                await asyncio.sleep(1)
                rv = (await client.list(PODS, label_selector="bench=scale", limit=1))["metadata"]["resourceVersion"]

    def latencies(self, keys: set[str]) -> list[float]:
        return [self.running[k] - self.added[k] for k in keys if k in self.running]


@dataclass
class NodeWatch:
    """Ready nodes, and every node that was seen not Ready at some point."""

    ready: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)

    async def run(self, client: HttpClient) -> None:
        while True:
            try:
                listing = await client.list(NODES)
                for node in listing["items"]:
                    self._see(node)
                async for event in client.watch(NODES, resource_version=listing["metadata"]["resourceVersion"],
                                                timeout_seconds=3600):
                    if event["type"] != "BOOKMARK":
                        self._see(event["object"])
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - relist
                await asyncio.sleep(1)

    def _see(self, node: dict) -> None:
        name = node["metadata"]["name"]
        ok = any(c.get("type") == "Ready" and c.get("status") == "True"
                 for c in (node.get("status") or {}).get("conditions") or [])
        if ok:
            self.ready.add(name)
        else:
            if name in self.ready:
                self.lost.add(name)
            self.ready.discard(name)


@dataclass
class Probe:
    """A small client measuring API call latency, as upstream's SLIs do (per verb class)."""

    samples: dict[str, list[float]] = field(default_factory=lambda: {"mutating": [], "get": [], "list": []})

    async def timed(self, kind: str, call) -> None:
        began = time.monotonic()
        try:
            await call
        except Exception:  # noqa: BLE001 - a failed call counts as a slow one
            self.samples[kind].append(60.0)
            return
        self.samples[kind].append(time.monotonic() - began)

    async def run(self, client: HttpClient, list_namespace: list[str]) -> None:
        i = 0
        while True:
            i += 1
            name = f"probe-{i}"
            body = {"metadata": {"name": name}, "data": {"k": "v"}}
            await self.timed("mutating", client.create(CONFIGMAPS, body, "probe"))
            await self.timed("get", client.get(CONFIGMAPS, name, "probe"))
            await self.timed("get", client.get(NAMESPACES, "probe"))
            await self.timed("mutating", client.delete(CONFIGMAPS, name, "probe"))
            if i % 4 == 0 and list_namespace:
                await self.timed("list", client.list(PODS, list_namespace[0]))
            await asyncio.sleep(0.5)

    def take(self) -> dict[str, list[float]]:
        out, self.samples = self.samples, {"mutating": [], "get": [], "list": []}
        return out


async def create_namespace(client: HttpClient, name: str) -> None:
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    # The pods need the namespace's default ServiceAccount (its controller makes it).
    await asyncio.sleep(0.5)


async def saturate(client: HttpClient, pods: PodWatch, first: int, count: int, limit: float,
                   namespaces: list[str]) -> tuple[float, float, set[str]]:
    """Create ``count`` pods as Deployments; seconds until created / all Running (NaN past the limit)."""
    began = time.monotonic()
    seen_before = set(pods.added)
    sem = asyncio.Semaphore(4)

    async def one(index: int) -> None:
        ns = f"scale-{index * REPLICAS // PODS_PER_NAMESPACE}"
        async with sem:
            await client.create(DEPLOYMENTS, deployment(f"d-{index}", REPLICAS), ns)

    deployments = range(first // REPLICAS, (first + count) // REPLICAS)
    for index in deployments:
        ns = f"scale-{index * REPLICAS // PODS_PER_NAMESPACE}"
        if ns not in namespaces:
            await create_namespace(client, ns)
            namespaces.append(ns)
    await asyncio.gather(*(one(i) for i in deployments))
    created = time.monotonic() - began
    while time.monotonic() - began < limit:
        mine = set(pods.added) - seen_before
        if len(mine) >= count and all(k in pods.running for k in mine):
            return created, time.monotonic() - began, mine
        await asyncio.sleep(1)
    return created, float("nan"), set(pods.added) - seen_before


async def latency_pods(client: HttpClient, pods: PodWatch, step: int, count: int) -> set[str]:
    """``count`` single-replica Deployments at 5/s; the keys of their pods once all run (or 60 s)."""
    await create_namespace(client, f"latency-{step}")
    seen_before = set(pods.added)
    for i in range(count):
        await client.create(DEPLOYMENTS, deployment(f"l-{i}", 1), f"latency-{step}")
        await asyncio.sleep(0.2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = set(pods.added) - seen_before
        if len(mine) >= count and all(k in pods.running for k in mine):
            break
        await asyncio.sleep(0.5)
    return set(pods.added) - seen_before


async def ramp(args: argparse.Namespace, client: HttpClient, server: subprocess.Popen[str],
               agent: subprocess.Popen[str]) -> list[dict]:
    pods, nodes, probe = PodWatch(), NodeWatch(), Probe()
    namespaces: list[str] = []
    await client.create(NAMESPACES, {"metadata": {"name": "probe"}})
    tasks = [asyncio.create_task(pods.run(client)), asyncio.create_task(nodes.run(client)),
             asyncio.create_task(probe.run(client, namespaces))]
    results: list[dict] = []
    began = time.monotonic()
    total = 0
    try:
        # The server's CPU rate with no pods arriving (lease renewals, node status, the
        # probe): subtracted from a step's CPU to get what the pods themselves cost.
        await asyncio.sleep(5)  # past the watches' first lists
        idle0, idle_t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(10)
        idle_rate = (cpu_seconds(server.pid) - idle0) / (time.monotonic() - idle_t0)
        while total < args.max_pods and time.monotonic() - began < args.minutes * 60:
            step = len(results)
            probe.take()
            s0, t0 = cpu_seconds(server.pid), time.monotonic()
            created, took, _ = await saturate(client, pods, total, args.step, args.step_limit, namespaces)
            total += args.step
            lat_keys = await latency_pods(client, pods, step, args.latency_pods)
            samples = probe.take()
            lat = pods.latencies(lat_keys)
            step_cpu, step_s = cpu_seconds(server.pid) - s0, time.monotonic() - t0
            step_pods = args.step + args.latency_pods
            row = {
                "pods": total + args.latency_pods * (step + 1),
                "created_s": round(created, 1), "running_s": round(took, 1),
                "pods_per_s": round(args.step / took, 1) if took == took else None,
                "server_cpu_s": round(step_cpu, 1),
                "server_ms_per_pod": round(1000 * step_cpu / step_pods, 2),
                "server_idle_cpu_per_s": round(idle_rate, 3),
                "server_ms_per_pod_net": round(1000 * (step_cpu - idle_rate * step_s) / step_pods, 2),
                "server_rss_mb": round(rss_mb(server.pid)), "agent_rss_mb": round(rss_mb(agent.pid)),
                "mutating_p99": round(pct(samples["mutating"], 0.99), 3),
                "get_p99": round(pct(samples["get"], 0.99), 3),
                "list_p99": round(pct(samples["list"], 0.99), 3),
                "startup_p50": round(pct(lat, 0.5), 2), "startup_p99": round(pct(lat, 0.99), 2),
                "latency_pods_running": len(lat),
                "nodes_ready": len(nodes.ready), "nodes_lost": len(nodes.lost),
                "load": os.getloadavg()[0], "elapsed_s": round(time.monotonic() - began),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
            broken = [k for k in ("mutating", "get", "list") if not row[f"{k}_p99"] <= SLO[k]]
            if not row["startup_p99"] <= SLO["startup"] or len(lat) < args.latency_pods:
                broken.append("startup")
            if nodes.lost:
                broken.append("nodes NotReady")
            if took != took:
                broken.append(f"step not Running within {args.step_limit:.0f} s")
            if row["server_rss_mb"] > args.max_rss_mb:
                broken.append(f"server RSS above {args.max_rss_mb} MB")
            if broken:
                row["broken"] = broken
                if args.keep_going and not row["server_rss_mb"] > args.max_rss_mb and took == took:
                    print(f"SLO broken at {row['pods']} pods: {', '.join(broken)}; going on", flush=True)
                    continue
                print(f"stopping: SLO broken at {row['pods']} pods: {', '.join(broken)}", flush=True)
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--step", type=int, default=10000)
    parser.add_argument("--max-pods", type=int, default=150000)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--step-limit", type=float, default=900.0)
    parser.add_argument("--latency-pods", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="1,000 nodes, 2 steps of 2,500 pods")
    parser.add_argument("--keep-going", action="store_true", help="ramp on past broken SLOs (memory curve)")
    parser.add_argument("--max-rss-mb", type=int, default=12000, help="stop above this server RSS")
    parser.add_argument("--json", help="save the rows here")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.step, args.max_pods, args.minutes, args.step_limit = 1000, 2500, 5000, 3.0, 120.0
        args.latency_pods = 20
    with tempfile.TemporaryDirectory(prefix="sampan-bench-") as tmp:
        server = start_server(tmp, "sqlite", 120)
        kubeconfig = Path(tmp) / "kubeconfig.yaml"
        agent = None
        try:
            agent, took = start_simulated_nodes(kubeconfig, args.nodes, 900)
            print(f"{args.nodes} simulated nodes registered in {took:.0f} s; "
                  f"server RSS {rss_mb(server.pid):.0f} MB, agent RSS {rss_mb(agent.pid):.0f} MB", flush=True)
            client = HttpClient.from_kubeconfig(kubeconfig, pool_size=32)
            try:
                rows = await ramp(args, client, server, agent)
            finally:
                await client.close()
            ok = [r for r in rows if "broken" not in r]
            print(f"largest step within the SLOs: {ok[-1]['pods'] if ok else 0} pods on {args.nodes} nodes; "
                  f"median load {statistics.median(r['load'] for r in rows):.1f}" if rows else "no step ran")
            if args.json:
                Path(args.json).write_text(json.dumps({"nodes": args.nodes, "rows": rows}, indent=1))
        finally:
            stop(agent, server)


if __name__ == "__main__":
    asyncio.run(main())

"""Workload controllers at scale: a real ``sampan server`` process (controllers and scheduler
in-process) plus a real ``sampan agent --simulate N`` process that reports bound pods Running.

    python bench/controllers.py [--replicas 1000] [--nodes 20] [--datastore sqlite]

Measures, each phase bounded in time:
- scale-up: a Deployment of R replicas created; time until all R pods exist (ReplicaSet
  status.replicas) and until the Deployment reports all R available (Running and Ready on
  simulated nodes), with the server CPU spent;
- rolling update: the image changed (maxSurge/maxUnavailable 25%); time until every replica
  runs the new template and the old ReplicaSet is drained.
Reference point: kube-controller-manager talks to its API server at 20 QPS (burst 30) by
default (``--kube-api-qps``), so upstream needs at least ~R/20 s just for the pod creates.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, rss_mb, start_server, start_simulated_nodes, stop  # noqa: E402
from sampan.client.http import HttpClient  # noqa: E402
from sampan.client.interface import DEPLOYMENTS, NODES, REPLICASETS  # noqa: E402

UPSTREAM_QPS = 20.0
PHASE_LIMIT_S = 600.0


def deployment(replicas: int, image: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


async def until(check: Callable[[], Awaitable[bool]], began: float, limit: float = PHASE_LIMIT_S) -> float:
    """Seconds from ``began`` until ``check`` holds (polled), or NaN past the limit."""
    while time.monotonic() - began < limit:
        if await check():
            return time.monotonic() - began
        await asyncio.sleep(0.2)
    return float("nan")


async def run(client: HttpClient, replicas: int, server_pid: int) -> None:
    async def status() -> dict:
        d = await client.get(DEPLOYMENTS, "bench", "default")
        st = dict(d.get("status") or {})
        st["current"] = st.get("observedGeneration") == d["metadata"]["generation"]
        return st

    async def all_pods_exist() -> bool:
        sets = (await client.list(REPLICASETS, "default"))["items"]
        return sum(int((rs.get("status") or {}).get("replicas") or 0) for rs in sets) >= replicas

    async def all_available() -> bool:
        st = await status()
        return st["current"] and st.get("availableReplicas") == replicas and st.get("updatedReplicas") == replicas

    async def rolled() -> bool:
        st = await status()
        return (st["current"] and st.get("updatedReplicas") == replicas and st.get("replicas") == replicas
                and st.get("availableReplicas") == replicas)

    cpu0 = cpu_seconds(server_pid)
    began = time.monotonic()
    await client.create(DEPLOYMENTS, deployment(replicas, "nginx:1"), "default")
    created = await until(all_pods_exist, began)
    available = await until(all_available, began)
    cpu1 = cpu_seconds(server_pid)
    floor = replicas / UPSTREAM_QPS
    print(f"scale-up to {replicas} replicas:")
    print(f"  all pods created  {created:6.1f} s ({replicas / created:.0f} pods/s)")
    print(f"  all available     {available:6.1f} s; server CPU {cpu1 - cpu0:.1f} s, RSS {rss_mb(server_pid):.0f} MB")
    print(f"  upstream floor at 20 QPS: {floor:.0f} s for the creates alone -> ratio {floor / available:.1f}x")

    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}
    began = time.monotonic()
    await client.patch(DEPLOYMENTS, "bench", patch, "strategic", "default")
    took = await until(rolled, began)
    cpu2 = cpu_seconds(server_pid)
    print(f"rolling update of {replicas} replicas (25% surge / 25% unavailable):")
    print(f"  complete          {took:6.1f} s; server CPU {cpu2 - cpu1:.1f} s")
    print(f"  upstream floor at 20 QPS: {2 * floor:.0f} s (creates + deletes) -> ratio {2 * floor / took:.1f}x")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--datastore", default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sampan-bench-") as tmp:
        server = start_server(tmp, args.datastore, 120)
        kubeconfig = Path(tmp) / "kubeconfig.yaml"
        agent = None
        try:
            agent, _ = start_simulated_nodes(kubeconfig, args.nodes, 300)
            client = HttpClient.from_kubeconfig(kubeconfig)
            try:
                nodes = len((await client.list(NODES))["items"])
                print(f"{nodes} simulated nodes, datastore {args.datastore}")
                await run(client, args.replicas, server.pid)
            finally:
                await client.close()
        finally:
            stop(agent, server)


if __name__ == "__main__":
    asyncio.run(main())

"""Simulated nodes at scale: a real ``sampan server`` process plus a real
``sampan agent --simulate N`` process.

    python bench/simulated_nodes.py [--nodes 5000] [--pods 10000] [--steady 60] [--datastore sqlite]

Measures: time for the agent to register N nodes and their leases ("ready" line); agent RSS;
agent and server CPU while N leases are renewed every 10 s (steady state, no pods); the
oldest lease renewal at the end and how many nodes node lifecycle still sees Ready (all of
them, if the server keeps up); then P pods created with spec.nodeName spread over the nodes
and the time until every one reports Running. Every phase is bounded in time.
Peer numbers (KWOK README): "reliably maintain 1k nodes and 100k pods", "create 20 nodes
or pods per second".
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, rss_mb, start_server, start_simulated_nodes, stop  # noqa: E402
from sampan.client.http import HttpClient  # noqa: E402
from sampan.client.interface import LEASES, NODES, PODS  # noqa: E402



async def list_all(client: HttpClient, ref, namespace: str | None = None) -> list[dict]:
    # One unpaginated list: under this much churn a continue token expires quickly.
    return (await client.list(ref, namespace))["items"]


async def health(client: HttpClient) -> tuple[int, float]:
    nodes = await list_all(client, NODES)
    ready = sum(
        1 for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    )
    now = datetime.now(UTC)
    leases = await list_all(client, LEASES, "kube-node-lease")
    oldest = max(
        (now - datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))).total_seconds()
        for lease in leases
    )
    return ready, oldest


async def pods_phase(client: HttpClient, count: int, nodes: int, limit_s: float) -> float:
    began = time.monotonic()
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        body = {"metadata": {"name": f"p-{i}"},
                "spec": {"nodeName": f"sim-{i % nodes}", "containers": [{"name": "c", "image": "nginx"}]}}
        async with sem:
            await client.create(PODS, body, "default")

    await asyncio.gather(*(create(i) for i in range(count)))
    created = time.monotonic() - began
    print(f"  {count} pods created in {created:.1f} s ({count / created:.0f}/s)")
    while time.monotonic() - began < limit_s:
        pods = await list_all(client, PODS, "default")
        running = sum(1 for p in pods if p["status"].get("phase") == "Running")
        if running >= count:
            return time.monotonic() - began
        await asyncio.sleep(1)
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--datastore", default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sampan-bench-") as tmp:
        server = start_server(tmp, args.datastore, 60)
        kubeconfig = Path(tmp) / "kubeconfig.yaml"
        agent = None
        try:
            s0 = cpu_seconds(server.pid)
            agent, took = start_simulated_nodes(kubeconfig, args.nodes, 900)
            s1 = cpu_seconds(server.pid)
            print(f"nodes: {args.nodes}, datastore {args.datastore}")
            print(f"  registered in {took:.1f} s ({args.nodes / took:.0f} nodes/s); server CPU {s1 - s0:.1f} s, "
                  f"agent CPU {cpu_seconds(agent.pid):.1f} s, agent RSS {rss_mb(agent.pid):.0f} MB")
            a0, s0 = cpu_seconds(agent.pid), cpu_seconds(server.pid)
            await asyncio.sleep(args.steady)
            a1, s1 = cpu_seconds(agent.pid), cpu_seconds(server.pid)
            print(f"  steady {args.steady:.0f} s: agent {100 * (a1 - a0) / args.steady:.0f}% CPU, "
                  f"server {100 * (s1 - s0) / args.steady:.0f}% CPU ({args.nodes / 10:.0f} lease renewals/s expected)")
            client = HttpClient.from_kubeconfig(kubeconfig)
            try:
                ready, oldest = await health(client)
                print(f"  nodes Ready: {ready}/{args.nodes}; oldest lease renewal {oldest:.1f} s ago; "
                      f"agent RSS {rss_mb(agent.pid):.0f} MB, server RSS {rss_mb(server.pid):.0f} MB")
                if args.pods:
                    a0, s0 = cpu_seconds(agent.pid), cpu_seconds(server.pid)
                    took = await pods_phase(client, args.pods, args.nodes, 600)
                    a1, s1 = cpu_seconds(agent.pid), cpu_seconds(server.pid)
                    print(f"  {args.pods} pods Running {took:.1f} s after the first create "
                          f"({args.pods / took:.0f} pods/s); agent CPU {a1 - a0:.1f} s, server CPU {s1 - s0:.1f} s, "
                          f"agent RSS {rss_mb(agent.pid):.0f} MB")
                    ready, oldest = await health(client)
                    print(f"  after the pods: nodes Ready {ready}/{args.nodes}; oldest lease renewal {oldest:.1f} s ago")
            finally:
                await client.close()
        finally:
            stop(agent, server)


if __name__ == "__main__":
    asyncio.run(main())

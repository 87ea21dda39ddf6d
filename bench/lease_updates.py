"""Lease renewal micro-benchmark: PUT of a Lease with a new renewTime, in process.

    python bench/lease_updates.py [--leases N] [--rounds N] [--profile]

Goes through the registry update path (admission, validation, managedFields, encode,
memory store) like a node heartbeat does, without HTTP. Prints updates/s and the
CPU time per update; ``--profile`` prints the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from datetime import datetime, timezone

from sampan.client.interface import ResourceRef
from sampan.client.local import LocalClient
from sampan.registry.registry import Registry
from sampan.server import bootstrap
from sampan.store.memory import MemoryStore

LEASES = ResourceRef("coordination.k8s.io", "v1", "leases")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def run(leases: int, rounds: int, profile: bool) -> None:
    store = MemoryStore()
    await store.start()
    try:
        reg = Registry(store)
        await bootstrap(reg)
        client = LocalClient(reg, field_manager="sampan-node")
        objs = []
        for i in range(leases):
            objs.append(await client.create(LEASES, {
                "metadata": {"name": f"node-{i}", "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": f"node-{i}", "leaseDurationSeconds": 40, "renewTime": now()},
            }))
        prof = cProfile.Profile() if profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        for _ in range(rounds):
            for i, obj in enumerate(objs):
                obj["spec"]["renewTime"] = now()
                objs[i] = await client.update(LEASES, obj)
        if prof:
            prof.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        n = leases * rounds
        print(f"lease updates: {n} in {wall:.2f}s = {n / wall:.0f}/s; CPU {cpu / n * 1e6:.0f} us/update")
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leases", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.leases, args.rounds, args.profile))


if __name__ == "__main__":
    main()

"""Scheduler benchmark: pods scheduled per second.

    python bench/scheduler.py [--quick] [--datastore sqlite|memory] [--json FILE]

Two measures, each for 10,000 pending pods on 1,000 and on 5,000 nodes:

- core: the pure scheduling core alone over a cache snapshot (filter, score, pick,
  assume), no API, no events; once for plain pods and once for pods with upstream's
  default spread constraints (as a ReplicaSet's pods get them);
- end to end: one process holding the store (behind the watch cache, as the server runs
  it), the registry and the scheduler on the in-process client. Nodes are created as
  objects, then the pods; the clock runs from the moment the scheduler's informers have
  synced (their initial list is reported apart) until the last binding has been written
  (binding is the end: no agent). It includes every pods/binding write, the informers'
  watch events and the Scheduled events written meanwhile; a second rate runs until every
  event is written too.

Rates are per wall-clock second and, because the machine may be shared, per CPU-second
of this process (all its threads). Goal: >= 1,000 pods/s at 5,000 nodes end to end.
Upstream reference: the kube-scheduler CI performance tests (scheduler_perf, 5,000 nodes)
hold a floor of 680-810 pods/s, on much bigger machines. ``--quick`` runs 2,000 pods.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sampan.client.interface import NODES, PODS  # noqa: E402
from sampan.client.local import LocalClient  # noqa: E402
from sampan.registry.registry import Registry  # noqa: E402
from sampan.scheduler import Scheduler, SchedulerConfig  # noqa: E402
from sampan.scheduler.cache import Cache  # noqa: E402
from sampan.scheduler.core import Algorithm  # noqa: E402
from sampan.scheduler.framework import CycleState, Framework, Handle  # noqa: E402
from sampan.scheduler.types import PodInfo  # noqa: E402
from sampan.server import bootstrap  # noqa: E402
from sampan.store import open_store  # noqa: E402

GOAL = 1000.0
UPSTREAM_FLOOR = (680.0, 810.0)
ZONES = 10


def node(i: int) -> dict[str, Any]:
    name = f"node-{i:05d}"
    alloc = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": f"zone-{i % ZONES}"},
        },
        "spec": {},
        "status": {
            "capacity": alloc,
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def pod(i: int) -> dict[str, Any]:
    # Like scheduler_perf's default pod: small cpu/memory requests, nothing else.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i:05d}", "namespace": "default", "labels": {"app": "bench"}},
        "spec": {
            "containers": [
                {"name": "c", "image": "registry.k8s.io/pause:3.9",
                 "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}
            ]
        },
    }


def spread_pod(i: int) -> dict[str, Any]:
    """A pod as a ReplicaSet's pods are scheduled: with upstream's default spread
    constraints (hostname maxSkew 3, zone maxSkew 5, ScheduleAnyway) over its labels."""
    obj = pod(i)
    obj["spec"]["topologySpreadConstraints"] = [
        {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"app": "bench"}}}
        for skew, key in ((3, "kubernetes.io/hostname"), (5, "topology.kubernetes.io/zone"))
    ]
    return obj


def bench_core(num_nodes: int, num_pods: int, make_pod: Any = pod) -> dict[str, float]:
    cache = Cache()
    for i in range(num_nodes):
        cache.add_node(node(i))
    config = SchedulerConfig()
    alg = Algorithm(Framework.build(config, Handle()), config.percentage_of_nodes_to_score, random.Random(1))
    infos = [PodInfo(make_pod(i)) for i in range(num_pods)]  # parsed once per pod, as the queue does
    start, cpu = time.perf_counter(), time.process_time()
    for info in infos:
        result = alg.schedule(CycleState(), info, cache.snapshot())
        assert result.node, "benchmark pods must all fit"
        cache.assume(info, result.node)
    return {
        "pods_per_s": num_pods / (time.perf_counter() - start),
        "pods_per_cpu_s": num_pods / (time.process_time() - cpu),
    }


async def bench_end_to_end(num_nodes: int, num_pods: int, datastore: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(datastore, Path(tmp))
        registry = Registry(store)
        await bootstrap(registry)
        client = LocalClient(registry, field_manager="bench")

        async def create_all(ref: Any, objs: list[dict[str, Any]]) -> None:
            async def worker(chunk: list[dict[str, Any]]) -> None:
                for obj in chunk:
                    await client.create(ref, obj)

            await asyncio.gather(*(worker(objs[w::16]) for w in range(16)))

        await create_all(NODES, [node(i) for i in range(num_nodes)])
        await create_all(PODS, [pod(i) for i in range(num_pods)])
        sched = Scheduler(LocalClient(registry, field_manager="default-scheduler"))
        begin = time.perf_counter()
        await sched.start()
        # The informers' initial list is startup, reported apart; the rate counts from here.
        start, cpu, threads = time.perf_counter(), time.process_time(), thread_cpu()
        while sched.bound < num_pods:
            await asyncio.sleep(0.01)
        elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
        await sched.recorder.flush()
        with_events, cpu_all = time.perf_counter() - start, time.process_time() - cpu
        by_thread = {name: used - threads.get(name, 0.0) for name, used in thread_cpu().items()}
        unbound = [p for p in (await client.list(PODS, "default"))["items"] if not p["spec"].get("nodeName")]
        assert not unbound, f"{len(unbound)} pods not bound"
        await sched.stop()
        await store.close()
        return {
            "pods_per_s": num_pods / elapsed,
            "pods_per_cpu_s": num_pods / cpu_used,
            "sync_s": start - begin,
            "pods_per_s_incl_events": num_pods / with_events,
            # The whole cost of a pod: CPU until its Scheduled event is written too.
            "cpu_ms_per_pod_incl_events": 1000 * cpu_all / num_pods,
            **{f"cpu_ms_per_pod_{name}": 1000 * used / num_pods for name, used in by_thread.items() if used > 0},
        }


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's threads by name (Linux), to tell the event
    loop from the store's writer and reader threads."""
    import os
    import threading

    names = {t.native_id: t.name.split("_")[0].rstrip("-0123456789") for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def machine() -> str:
    import os

    cores = os.cpu_count()
    return f"{cores} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 pods instead of 10,000")
    parser.add_argument("--datastore", default="sqlite", help="sqlite (default) or memory")
    parser.add_argument("--nodes", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    num_pods = 2000 if args.quick else 10000
    results: dict[str, Any] = {"machine": machine(), "pods": num_pods, "datastore": args.datastore, "runs": []}
    print(f"machine: {results['machine']}; {num_pods} pods; datastore {args.datastore}")
    for num_nodes in args.nodes:
        core = bench_core(num_nodes, num_pods)
        spread = bench_core(num_nodes, num_pods, spread_pod)
        e2e = await bench_end_to_end(num_nodes, num_pods, args.datastore)
        run = {"nodes": num_nodes, **{f"core_{k}": v for k, v in core.items()}}
        run.update({f"spread_{k}": v for k, v in spread.items()})
        run.update({f"e2e_{k}": v for k, v in e2e.items()})
        results["runs"].append(run)
        rate = e2e["pods_per_s"]
        split = ", ".join(
            f"{k.removeprefix('cpu_ms_per_pod_')} {v:.3f}"
            for k, v in e2e.items()
            if k.startswith("cpu_ms_per_pod_") and k != "cpu_ms_per_pod_incl_events"
        )
        print(
            f"{num_nodes:>5} nodes: core {core['pods_per_s']:6.0f} pods/s ({core['pods_per_cpu_s']:.0f} per CPU-s) | "
            f"end to end {rate:5.0f} pods/s ({e2e['pods_per_cpu_s']:.0f} per CPU-s; informer sync "
            f"{e2e['sync_s']:.2f} s; {e2e['pods_per_s_incl_events']:.0f} pods/s until every event is written)\n"
            f"             CPU per pod until its event is written: {e2e['cpu_ms_per_pod_incl_events']:.3f} ms "
            f"({split})\n"
            f"             core, pods with spread constraints: {spread['pods_per_s']:.0f} pods/s "
            f"({spread['pods_per_cpu_s']:.0f} per CPU-s)\n"
            f"             end to end / goal {rate / GOAL:.2f}; / upstream floor "
            f"{rate / UPSTREAM_FLOOR[1]:.2f}-{rate / UPSTREAM_FLOOR[0]:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

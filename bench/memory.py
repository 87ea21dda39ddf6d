"""Server memory with many nodes and pods, without the slow create-schedule-run pipeline.

    python bench/memory.py [--nodes 5000] [--pods 50000] [--events-per-pod 0] [--trace] [--quick]

1. Seed: a SQLite data dir is filled the way a restored cluster looks. One Node, one
   ReplicaSet per namespace and one pod per ReplicaSet go through the registry (the pod is
   created by kube-controller-manager, bound by default-scheduler, given a Running status by
   the kubelet, so its managedFields are real); the other nodes and pods are copies of those
   stored objects with their own names, UIDs, node, pod CIDR and IPs, written straight to the
   store. Pods are spread evenly over the nodes (``--pods / --nodes`` per node).
2. Measure: a child process starts the whole server on that data dir (watch cache, every
   controller and the scheduler in process, as ``sampan server --no-agent``), waits until
   every informer has synced and the work queues are drained, and reports RSS and PSS
   (/proc), the retained size of each component's structures (a deep object walk; shared
   objects are counted once, for the first component that reaches them) and, with
   ``--trace``, tracemalloc totals grouped by source file (tracemalloc slows the start and
   adds its own memory, so RSS is reported from runs without it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.memsize import deep_sizes, malloc_trim, proc_memory, trace_by_file  # noqa: E402

PODS_PER_RS = 100
RS_PER_NAMESPACE = 20
IMAGE = "registry.k8s.io/pause:3.9"


# -- seeding -------------------------------------------------------------------------


def node_cidr(i: int) -> str:
    return f"10.{(i >> 8) & 255}.{i & 255}.0/24"


def pod_ip(node: int, slot: int) -> str:
    return f"10.{(node >> 8) & 255}.{node & 255}.{2 + slot % 250}"


def _node(name: str, cidr: str) -> dict[str, Any]:
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "bench-memory"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}


def _node_status(name: str, ip: str) -> dict[str, Any]:
    res = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def cond(t: str, s: str, reason: str, msg: str) -> dict[str, str]:
        return {"type": t, "status": s, "lastHeartbeatTime": now, "lastTransitionTime": now,
                "reason": reason, "message": msg}

    return {"capacity": res, "allocatable": dict(res),
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "0" * 32, "systemUUID": "0" * 8, "bootID": "0" * 8, "kernelVersion": "6.1.0",
                         "osImage": "bench", "containerRuntimeVersion": "simulated://1.0.0",
                         "kubeletVersion": "v1.31.0", "kubeProxyVersion": "v1.31.0", "operatingSystem": "linux",
                         "architecture": "amd64"}}


def _replicaset(name: str, ns: str) -> dict[str, Any]:
    labels = {"app": name, "pod-template-hash": "5d8f7c6b9"}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-5d8f7c6b9", "namespace": ns, "labels": labels},
            "spec": {"replicas": PODS_PER_RS, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": IMAGE,
                                                           "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                                           "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}}


def _running_status(pod: dict[str, Any], ip: str, host_ip: str, cid: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def cond(t: str) -> dict[str, Any]:
        return {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}

    statuses = [{"name": c["name"], "image": "registry.k8s.io/pause:3.9", "imageID": "registry.k8s.io/pause@sha256:"
                 + "7" * 64, "containerID": cid, "ready": True, "started": True, "restartCount": 0,
                 "state": {"running": {"startedAt": now}}, "lastState": {}} for c in pod["spec"]["containers"]]
    return {"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": now, "qosClass": (pod.get("status") or {}).get("qosClass", "Burstable"),
            "conditions": [cond(t) for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")]
            + [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"],
            "containerStatuses": statuses}


async def _bulk(store: Any, items: list[tuple[str, bytes]], width: int = 512) -> None:
    for start in range(0, len(items), width):
        await asyncio.gather(*(store.create(k, v) for k, v in items[start:start + width]))


async def seed(data_dir: Path, nodes: int, pods: int, events_per_pod: int) -> dict[str, Any]:
    from sampan.client.interface import NAMESPACES, NODES, PODS, REPLICASETS
    from sampan.client.local import LocalClient
    from sampan.registry.meta import new_uid
    from sampan.registry.registry import Registry
    from sampan.server import bootstrap
    from sampan.store import open_store

    began = time.monotonic()
    store = await open_store("sqlite", data_dir)
    registry = Registry(store)
    await bootstrap(registry)
    kubelet = LocalClient(registry, field_manager="kubelet")
    kcm = LocalClient(registry, field_manager="kube-controller-manager")
    sched = LocalClient(registry, field_manager="default-scheduler")

    # Nodes: one through the registry, the rest copies of its stored form.
    first = await kubelet.create(NODES, _node("node-0", node_cidr(0)))
    first["status"] = _node_status("node-0", "172.16.0.1")
    await kubelet.update(NODES, first, subresource="status")
    node_rs = registry.must("", "v1", "nodes")
    template = orjson.loads((await store.get(node_rs.key("", "node-0"))).value)
    batch = []
    for i in range(1, nodes):
        obj = orjson.loads(orjson.dumps(template))
        name = f"node-{i}"
        obj["metadata"].update(name=name, uid=new_uid())
        obj["metadata"]["labels"]["kubernetes.io/hostname"] = name
        obj["spec"] = {"podCIDR": node_cidr(i), "podCIDRs": [node_cidr(i)]}
        obj["status"]["addresses"] = [{"type": "InternalIP", "address": f"172.16.{i >> 8}.{i & 255}"},
                                      {"type": "Hostname", "address": name}]
        batch.append((node_rs.key("", name), orjson.dumps(obj)))
    await _bulk(store, batch)

    # Pods: ReplicaSets of 100 in namespaces of 20 ReplicaSets; pod n runs on node n % nodes.
    pod_rs, rs_rs = registry.must("", "v1", "pods"), registry.must("apps", "v1", "replicasets")
    ev_rs = registry.must("", "v1", "events")
    n_rs = (pods + PODS_PER_RS - 1) // PODS_PER_RS
    n = 0
    for r in range(n_rs):
        ns = f"bench-{r // RS_PER_NAMESPACE}"
        if r % RS_PER_NAMESPACE == 0:
            await kcm.create(NAMESPACES, {"metadata": {"name": ns}})
        rs = await kcm.create(REPLICASETS, _replicaset(f"app-{r}", ns), ns)
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                 "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        tmpl = rs["spec"]["template"]
        base = {"metadata": {"generateName": rs["metadata"]["name"] + "-", "namespace": ns,
                             "labels": dict(tmpl["metadata"]["labels"]), "ownerReferences": [owner]},
                "spec": tmpl["spec"]}
        pod = await kcm.create(PODS, base, ns)
        pname = pod["metadata"]["name"]
        await sched.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pname, "namespace": ns},
                                  "target": {"kind": "Node", "name": f"node-{n % nodes}"}}, ns, subresource="binding")
        pod = await kubelet.get(PODS, pname, ns)
        pod["status"] = _running_status(pod, pod_ip(n % nodes, n // nodes), "172.16.0.1", "containerd://" + "0" * 64)
        await kubelet.update(PODS, pod, subresource="status")
        template = orjson.loads((await store.get(pod_rs.key(ns, pname))).value)
        ev_template = None
        batch = []
        for j in range(min(PODS_PER_RS, pods - n)):
            node = n % nodes
            obj = orjson.loads(orjson.dumps(template))
            m = obj["metadata"]
            name = f"{rs['metadata']['name']}-{j:05d}" if j else pname
            m.update(name=name, uid=new_uid())
            obj["spec"]["nodeName"] = f"node-{node}"
            st = obj["status"]
            ip, host = pod_ip(node, n // nodes), f"172.16.{node >> 8}.{node & 255}"
            st.update(podIP=ip, podIPs=[{"ip": ip}], hostIP=host, hostIPs=[{"ip": host}])
            for cs in st["containerStatuses"]:
                cs["containerID"] = "containerd://" + m["uid"].replace("-", "") * 2
            if j:
                batch.append((pod_rs.key(ns, name), orjson.dumps(obj)))
            for e in range(events_per_pod):
                if ev_template is None:
                    ev_template = await _event_template(kcm, ns, name)
                ev = orjson.loads(orjson.dumps(ev_template))
                ev["metadata"].update(name=f"{name}.{e:x}", uid=new_uid())
                ev["involvedObject"].update(name=name, uid=m["uid"])
                batch.append((ev_rs.key(ns, ev["metadata"]["name"]), orjson.dumps(ev)))
            n += 1
        await _bulk(store, batch)
    await store.close()
    return {"seed_seconds": round(time.monotonic() - began, 1)}


async def _event_template(client: Any, ns: str, pod: str) -> dict[str, Any]:
    from sampan.client.interface import EVENTS

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ev = await client.create(EVENTS, {
        "metadata": {"name": f"{pod}.template", "namespace": ns},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod, "apiVersion": "v1", "uid": ""},
        "reason": "Scheduled", "message": f"Successfully assigned {ns}/{pod} to node-0", "type": "Normal",
        "source": {"component": "default-scheduler"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": "default-scheduler", "reportingInstance": "default-scheduler"}, ns)
    await client.delete(EVENTS, ev["metadata"]["name"], ns)
    ev["metadata"].pop("resourceVersion", None)
    return ev


# -- measuring (child process) -----------------------------------------------------------


async def measure(data_dir: Path, trace: bool, settle: float) -> dict[str, Any]:
    from sampan.server import ServerOptions, start_server

    gc.collect()
    before = proc_memory()
    began = time.monotonic()
    cpu0 = time.process_time()
    server = await start_server(ServerOptions(
        data_dir=data_dir, port=0, datastore="sqlite", cluster_cidr="10.0.0.0/8",
        node_monitor_grace_period=10.0**9))
    informers = _informers(server)
    while not all(i.has_synced() for i in informers):
        await asyncio.sleep(0.5)
    synced = time.monotonic() - began
    # Let the controllers work through the initial queue (every object is enqueued once).
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and _busy(server):
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)
    cpu = time.process_time() - cpu0
    peak = proc_memory()
    gc.collect()
    after = proc_memory()
    malloc_trim()
    trimmed = proc_memory()
    result: dict[str, Any] = {
        "rss_start_mb": before["rss_mb"], "rss_mb": after["rss_mb"], "pss_mb": after["pss_mb"],
        "rss_trimmed_mb": trimmed["rss_mb"],
        "rss_hwm_mb": peak["hwm_mb"], "sync_seconds": round(synced, 1), "cpu_seconds": round(cpu, 1),
        "objects": {i.resource.plural + ("(sched)" if i in _sched_informers(server) else ""): len(i.cache)
                    for i in informers},
        "retained_mb": deep_sizes(_components(server)),
    }
    if trace:
        result["tracemalloc_mb"] = trace_by_file()
    await server.stop()
    return result


def _sched_informers(server: Any) -> list[Any]:
    """The scheduler's own informers (none when it shares the controller manager's factory)."""
    if server.scheduler is None or server.scheduler.informers is server.controllers.context.informers:
        return []
    return server.scheduler.informers.informers()


def _informers(server: Any) -> list[Any]:
    found = list(server.controllers.context.informers.informers())
    return found + [i for i in _sched_informers(server) if i not in found]


def _busy(server: Any) -> bool:
    return any(len(c.queue) for c in server.controllers.controllers)


def _components(server: Any) -> list[tuple[str, Any]]:
    """What to size, in order: shared objects count for the first component that reaches them."""
    store = server.store
    parts: list[tuple[str, Any]] = [("watch cache: objects", store._items),
                                    ("watch cache: event window", store._window)]
    for inf in server.controllers.context.informers.informers():
        parts.append((f"informer {inf.resource.plural}", inf.cache))
    for inf in _sched_informers(server):
        parts.append((f"informer {inf.resource.plural} (scheduler)", inf.cache))
    if server.scheduler is not None:
        parts.append(("scheduler cache+queue", [server.scheduler.cache, server.scheduler.queue]))
    for factory in {id(f): f for f in (server.controllers.context.informers, getattr(server, "informers", None))
                    if f is not None}.values():
        if getattr(factory, "transform", None) is not None:
            parts.append(("informer compactor table", factory.transform))
    parts.append(("controllers (own state)", [vars(c) for c in server.controllers.controllers]))
    return parts


# -- driver -------------------------------------------------------------------------------


def run_child(data_dir: Path, trace: bool, settle: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(data_dir), "--settle", str(settle)] + (["--trace"] if trace else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"measuring child failed ({out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=50000)
    ap.add_argument("--events-per-pod", type=int, default=0)
    ap.add_argument("--trace", action="store_true", help="also a run with tracemalloc (slow)")
    ap.add_argument("--settle", type=float, default=120.0, help="max seconds to wait for controller queues")
    ap.add_argument("--quick", action="store_true", help="500 nodes, 5,000 pods")
    ap.add_argument("--data-dir", help="keep (or reuse, if already seeded) this data dir")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        if args.trace:
            import tracemalloc

            tracemalloc.start(1)
        print(json.dumps(asyncio.run(measure(Path(args.child), args.trace, args.settle))))
        return
    if args.quick:
        args.nodes, args.pods = 500, 5000
    with tempfile.TemporaryDirectory(prefix="sampan-bench-memory-") as tmp:
        data_dir = Path(args.data_dir or tmp)
        report: dict[str, Any] = {"nodes": args.nodes, "pods": args.pods, "events_per_pod": args.events_per_pod}
        if not (data_dir / "server" / "db" / "state.db").exists():
            report.update(asyncio.run(seed(data_dir, args.nodes, args.pods, args.events_per_pod)))
        report["run"] = run_child(data_dir, False, args.settle)
        if args.trace:
            report["traced"] = run_child(data_dir, True, args.settle)
        base = report["run"]["rss_start_mb"]
        report["rss_per_pod_kb"] = round((report["run"]["rss_mb"] - base) * 1024 / max(1, args.pods), 1)
        report["load_average"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

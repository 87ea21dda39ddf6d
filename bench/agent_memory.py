"""The node agent's idle memory over time: RSS and PSS of a real ``sampan agent --server URL
--token T`` (oci runtime, service proxy, NetworkPolicy and cluster DNS running) at a few moments
after its Node is Ready, plus where it goes.

    sudo python bench/agent_memory.py [--at 3,10,30] [--inspect [--trace] [--trim]] [--without PART]
                                      [--whole-server] [--json FILE]

``sampan server --no-agent`` (memory datastore) and the agent run as separate processes; nothing
but the agent's own objects (its Node, Lease, the kube-dns Service) exists in the cluster. Each
sample reads /proc/<pid>/smaps_rollup (RSS, PSS, anonymous memory) and the thread count.
``--inspect`` starts the agent through a small wrapper that, on SIGUSR1, writes the loaded modules,
threads, glibc malloc statistics and the commonest object types to a JSON file, and lists the
largest mappings (the numbers then include the wrapper's few hundred KB); ``--trace`` adds
tracemalloc totals by package, ``--trim`` a second sample after ``gc.collect()`` +
``malloc_trim(0)`` (what the allocators hold free). ``--whole-server`` also samples ``sampan
server`` with its in-process agent. ``--pyc`` runs everything with bytecode caches (written
beforehand under /tmp), like an installed package; without it the environment decides (with
PYTHONDONTWRITEBYTECODE=1 every start compiles the sources, which leaves ~1.5 MB more heap).
Needs root, runc, conmon and the CNI plugins (like bench/node.py); run it under
``flock /tmp/sampan-realpods.lock`` (shared nft tables, bridge).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import node_ready, start, stop  # noqa: E402
from sampan.client.http import HttpClient  # noqa: E402

NODE = "bench-mem-node"
CIDRS = ["--cluster-cidr", "198.18.0.0/16", "--service-cidr", "198.19.0.0/16"]

# Runs inside the agent process with --inspect: a SIGUSR1 handler that reports, then the CLI.
WRAPPER = r"""
import collections, ctypes, gc, json, os, signal, sys, threading
OUT = os.environ["SAMPAN_MEM_REPORT"]

def report(*_):
    class MI(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MI
    mi = libc.mallinfo2()
    types = collections.Counter(type(o).__name__ for o in gc.get_objects())
    data = {"modules": len(sys.modules), "module_names": sorted(sys.modules),
            "threads": [t.name for t in threading.enumerate()], "tasks": len(os.listdir("/proc/self/task")),
            "malloc": {f: getattr(mi, f) // 1024 for f, _ in MI._fields_}, "gc_objects": sum(types.values()),
            "top_types": types.most_common(15)}
    import tracemalloc
    if tracemalloc.is_tracing():  # --trace: Python allocations by package
        by = collections.Counter()
        for stat in tracemalloc.take_snapshot().statistics("filename"):
            f = stat.traceback[0].filename
            if "site-packages/" in f:
                part = f.split("site-packages/")[-1].split("/")[0]
            elif "/sampan/" in f:
                part = "sampan/" + f.split("/sampan/", 1)[-1]
            else:
                part = "stdlib:" + f.rsplit("/", 1)[-1]
            by[part] += stat.size
        data["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
        data["traced_top"] = [(k, v // 1024) for k, v in by.most_common(30)]
    with open(OUT, "a") as f:
        f.write(json.dumps(data) + "\n")

signal.signal(signal.SIGUSR1, report)
signal.signal(signal.SIGUSR2, lambda *_: (gc.collect(), ctypes.CDLL("libc.so.6").malloc_trim(0)))
sys.argv = ["sampan", *sys.argv[1:]]
from sampan.cli import main
main()
"""


def smaps(pid: int) -> dict[str, float]:
    """RSS, PSS and anonymous memory in MB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:", "Anonymous:", "Pss_Anon:", "Pss_File:"):
            values[parts[0].rstrip(":").lower()] = round(int(parts[1]) / 1024, 1)
    values["threads"] = len(os.listdir(f"/proc/{pid}/task"))
    return values


def mappings(pid: int, top: int = 15) -> list[tuple[str, float, float]]:
    """The largest parts of the RSS by mapped file ([anon] for anonymous memory): (name, RSS MB, anonymous MB)."""
    sizes: dict[str, list[int]] = {}
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and not parts[0].endswith(":"):
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif parts and parts[0] in ("Rss:", "Anonymous:"):
            sizes.setdefault(name, [0, 0])[parts[0] == "Anonymous:"] += int(parts[1])
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1][0])[:top]
    return [(Path(n).name or n, round(r / 1024, 1), round(a / 1024, 1)) for n, (r, a) in ranked]


async def wait_ready(kubeconfig: Path, timeout: float) -> None:
    client = HttpClient.from_kubeconfig(kubeconfig)
    try:
        await node_ready(client, NODE, timeout)
    finally:
        await client.close()


def run(tmp: Path, at: list[float], inspect: bool, trace: bool = False, trim: bool = False,
        extra: list[str] | None = None) -> dict[str, Any]:
    from tests.e2e.test_pods_real import _kill_leftovers

    sdata, adata = tmp / "server", tmp / "node"
    report = tmp / "report.jsonl"
    server = agent = None
    try:
        server, _ = start(["server", "--data-dir", str(sdata), "--datastore", "memory", "--port", "0", "--no-agent",
                           *CIDRS, "--disable", "ingress", "--disable", "servicelb"], "sampan server ready", 120)
        kubeconfig = sdata / "kubeconfig.yaml"
        url = next(line.split()[-1] for line in kubeconfig.read_text().splitlines() if "server:" in line)
        token = (sdata / "server" / "join-token").read_text().strip()
        args = ["agent", "--server", url, "--token", token, "--node-name", NODE, "--data-dir", str(adata),
                "--runtime", "oci", "--kubelet-port", "0", *CIDRS, *(extra or [])]
        if inspect:
            os.environ["SAMPAN_MEM_REPORT"] = str(report)
            wrapper = tmp / "wrapper.py"
            wrapper.write_text(WRAPPER)
            args = [str(wrapper), *args]
            agent = _start_script(args, trace)
        else:
            agent, _ = start(args, "sampan agent ready", 120)
        asyncio.run(wait_ready(kubeconfig, 90))
        ready = time.monotonic()
        samples: dict[str, Any] = {}
        for t in at:
            time.sleep(max(0.0, ready + t - time.monotonic()))
            if agent.poll() is not None:
                raise SystemExit(f"the agent exited (code {agent.returncode})")
            samples[f"{t:g}s"] = smaps(agent.pid)
            if trim:
                os.kill(agent.pid, signal.SIGUSR2)
                time.sleep(1)
                samples[f"{t:g}s-trimmed"] = smaps(agent.pid)
            if inspect:
                os.kill(agent.pid, signal.SIGUSR1)
        out: dict[str, Any] = {"after_ready": samples}
        if inspect:
            out["mappings"] = mappings(agent.pid)
        if inspect:
            deadline = time.monotonic() + 60  # a tracemalloc snapshot takes a while
            while time.monotonic() < deadline and (
                    not report.exists() or len(report.read_text().splitlines()) < len(at)):
                time.sleep(0.5)
            reports = [json.loads(line) for line in report.read_text().splitlines()]
            out["inspect"] = reports[-1]
            out["inspect"]["modules_over_time"] = [r["modules"] for r in reports]
        return out
    finally:
        stop(agent, server)
        _kill_leftovers(adata)


def whole_server(tmp: Path, at: list[float]) -> dict[str, Any]:
    """``sampan server`` with its in-process agent (and network services): the same samples."""
    from tests.e2e.test_pods_real import _kill_leftovers

    data = tmp / "whole"
    proc = None
    try:
        proc, _ = start(["server", "--data-dir", str(data), "--datastore", "sqlite", "--port", "0", "--node-name",
                         NODE, "--runtime", "oci", *CIDRS, "--disable", "ingress", "--disable", "servicelb"],
                        "sampan server ready", 120)
        asyncio.run(wait_ready(data / "kubeconfig.yaml", 90))
        ready = time.monotonic()
        samples: dict[str, Any] = {}
        for t in at:
            time.sleep(max(0.0, ready + t - time.monotonic()))
            samples[f"{t:g}s"] = smaps(proc.pid)
        return {"server_with_agent_after_ready": samples}
    finally:
        stop(proc)
        _kill_leftovers(data)


def _start_script(args: list[str], trace: bool) -> Any:
    """bench.common.start runs ``-m sampan``; the wrapper is a script (same readiness line)."""
    import subprocess
    import threading

    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[1],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                                 **({"PYTHONTRACEMALLOC": "1"} if trace else {})})
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "sampan agent ready" in line:
                ready.set()
            elif "Traceback" in line or "ERROR" in line:
                sys.stderr.write(line)

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        raise SystemExit("the agent did not start")
    return proc


PYC_DIR = "/tmp/sampan-bench-pyc"
# What the agent and the server import, compiled once into the cache before measuring.
WARM = ("import sampan.cli, sampan.server, sampan.node.runner, sampan.node.remote_streams, sampan.node.servingcert, "
        "sampan.node.netservices, sampan.node.heaptrim, sampan.client.lite, sampan.proxy.dns, sampan.proxy.proxier, "
        "sampan.proxy.netpol, sampan.node.images, sampan.node.runtimes.select, sampan.node.probes, dns.asyncquery")


def warm_bytecode_cache() -> None:
    import subprocess

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = PYC_DIR  # our children inherit both
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "sampan")], check=True, cwd=root,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-c", WARM], check=True, cwd=root)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--at", default="3,10,30", help="seconds after Ready to sample (comma-separated)")
    p.add_argument("--inspect", action="store_true", help="also report modules, threads, malloc and object counts")
    p.add_argument("--trace", action="store_true", help="with --inspect: tracemalloc by package (slow, bigger)")
    p.add_argument("--trim", action="store_true", help="with --inspect: also sample after gc + malloc_trim")
    p.add_argument("--without", action="append", default=[], choices=["coredns", "kube-proxy", "network-policy"],
                   help="run the agent with --disable NAME (repeatable), to see what a part costs")
    p.add_argument("--whole-server", action="store_true",
                   help="also sample `sampan server` with its in-process agent (the < 100 MB goal)")
    p.add_argument("--pyc", action="store_true", help="use bytecode caches, as an installed package does")
    p.add_argument("--json", type=Path, default=None, help="also write the result to this file")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    at = sorted(float(x) for x in args.at.split(","))
    if args.pyc:
        warm_bytecode_cache()
    with tempfile.TemporaryDirectory(prefix="sampan-bench-agentmem-") as d:
        extra = [a for name in args.without for a in ("--disable", name)]
        result = run(Path(d), at, args.inspect or args.trace or args.trim, args.trace, args.trim, extra)
        if args.whole_server:
            result.update(whole_server(Path(d), at))
    result["load_average"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text)
    if args.inspect:
        result["inspect"].pop("module_names")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

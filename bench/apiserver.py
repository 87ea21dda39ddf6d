"""API server benchmark: a real ``sampan server`` process driven over HTTPS.

    python bench/apiserver.py [--quick] [--json FILE] [--repeat N]

The server runs as a subprocess (default SQLite store, ``--no-agent``); this process
is the load generator (aiohttp, the admin client certificate from the kubeconfig the
server writes), so client and server CPU are accounted separately. Measures:

- time from process start to ``/readyz`` ok: first start (PKI generation) and restart;
- idle RSS of the server a few seconds after it is ready;
- ConfigMap creates/s with 16 concurrent clients and with 1 client, and the server
  CPU time spent per create;
- get p50/p99 (1 client) and mutating (create + update) p99 under 16 clients;
- list of a namespace holding 10k pods, p50/p99 over a few lists;
- watch fan-out: one change, 1,000 watchers; time from issuing the write to the
  last watcher reading the event.

Every loop is bounded in count and time. Ends with a table of ratios to the goals and to
the upstream numbers (kube-apiserver 1.36 + etcd on this kind of machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = {"create_16": (1100, 1230), "create_1": (450, 530), "ready_s": 2.2, "idle_rss_mb": 460}
GOALS = {"ready_s": 1.0, "idle_rss_mb": 60, "mutating_p99_s": 1.0, "list_10k_p99_s": 5.0}
PHASE_LIMIT_S = 120.0  # no single load phase runs longer than this
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One ``sampan server`` subprocess on a data dir and a fixed loopback port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_cpu_s = 0.0
        self.log = data_dir.parent / f"{data_dir.name}.log"

    async def start(self) -> float:
        """Starts the process; returns seconds from spawn to the first ``/readyz`` 200
        (``self.ready_cpu_s``: CPU seconds it and its children had used by then)."""
        cmd = [sys.executable, "-m", "sampan", "server", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--no-agent"]
        start = time.perf_counter()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        # /readyz is public: no client certificate needed, and the CA does not exist yet.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, force_close=True)) as http:
            while time.perf_counter() - start < 30:
                if self.proc.poll() is not None:
                    tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                    raise RuntimeError(f"server exited with {self.proc.returncode}: " + "\n".join(tail))
                try:
                    async with http.get(self.url + "/readyz") as resp:
                        if resp.status == 200:
                            elapsed = time.perf_counter() - start
                            self.ready_cpu_s = self.cpu_s(children=True)
                            return elapsed
                except (aiohttp.ClientError, OSError):
                    pass
                await asyncio.sleep(0.005)
        raise RuntimeError("server not ready within 30 s")

    async def wait_kubeconfig(self) -> Path:
        path = self.data_dir / "kubeconfig.yaml"
        for _ in range(1200):  # the ready line (and kubeconfig) follows controller start-up
            if path.exists() and self.url in path.read_text():
                return path
            await asyncio.sleep(0.05)
        raise RuntimeError("kubeconfig not written")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self, children: bool = False) -> float:
        """User + system CPU seconds of the server process so far (and of its exited children)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
        return ticks / CLK_TCK

    async def settle(self, limit: float = 60.0) -> float:
        """Waits (at most ``limit`` s) until the server uses under 10% of a core, e.g. after
        its controllers and scheduler caught up with a burst of writes; returns the wait."""
        start = time.perf_counter()
        while time.perf_counter() - start < limit:
            before = self.cpu_s()
            await asyncio.sleep(0.5)
            if self.cpu_s() - before < 0.05:
                break
        return time.perf_counter() - start

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def client_ssl(kubeconfig: Path, tmp: Path) -> ssl.SSLContext:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    (tmp / "client.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
    (tmp / "client.key").write_bytes(base64.b64decode(user["client-key-data"]))
    ctx = ssl.create_default_context(cadata=ca)
    ctx.load_cert_chain(tmp / "client.crt", tmp / "client.key")
    return ctx


def configmap(name: str, i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name, "labels": {"app": "bench"}},
                         "data": {"index": str(i), "payload": "x" * 300}})


def pod(name: str) -> bytes:
    # A scheduler of its own: the in-process scheduler leaves these pods alone (there are no
    # nodes with --no-agent), so the list measures the API server and not a scheduling backlog.
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"schedulerName": "bench-unscheduled",
                 "containers": [{"name": "app", "image": "registry.example/app:1.0",
                                 "ports": [{"containerPort": 8080}],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    })


class Load:
    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def request(self, method: str, path: str, body: bytes | None = None,
                      content_type: str = "application/json") -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if body is not None else None
        async with self.http.request(method, self.url + path, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def ensure_namespace(self, ns: str) -> None:
        status, body = await self.request("POST", "/api/v1/namespaces",
                                          orjson.dumps({"metadata": {"name": ns}}))
        assert status in (201, 409), body

    async def create_many(self, path: str, make: Any, clients: int, count: int) -> dict[str, Any]:
        """``count`` POSTs split over ``clients`` sequential loops; latency per request."""
        latencies: list[float] = []
        deadline = time.perf_counter() + PHASE_LIMIT_S

        async def worker(w: int) -> None:
            for i in range(w, count, clients):
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                status, body = await self.request("POST", path, make(i))
                latencies.append(time.perf_counter() - t0)
                assert status == 201, body[:300]

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - start
        return {"count": len(latencies), "rate": len(latencies) / elapsed, "latencies": latencies}


async def load_phase(server: ServerProcess, ssl_ctx: ssl.SSLContext, quick: bool) -> dict[str, Any]:
    n16, n1 = (1500, 400) if quick else (5000, 2000)
    results: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:
        load = Load(server.url, http)
        for ns in ("bench-c16", "bench-c1", "bench-list", "bench-watch"):
            await load.ensure_namespace(ns)
        # Warm up connections and code paths before anything is timed.
        await load.create_many("/api/v1/namespaces/bench-c1/configmaps", lambda i: configmap(f"warm-{i}", i), 16, 64)

        cpu0 = server.cpu_s()
        c16 = await load.create_many("/api/v1/namespaces/bench-c16/configmaps",
                                     lambda i: configmap(f"cm-{i}", i), 16, n16)
        results["create_16"] = c16["rate"]
        results["create_16_server_cpu_ms"] = (server.cpu_s() - cpu0) / c16["count"] * 1e3
        cpu0 = server.cpu_s()
        c1 = await load.create_many("/api/v1/namespaces/bench-c1/configmaps", lambda i: configmap(f"cm-{i}", i), 1, n1)
        results["create_1"] = c1["rate"]
        results["create_1_server_cpu_ms"] = (server.cpu_s() - cpu0) / c1["count"] * 1e3

        # Updates under 16 clients: a merge patch per request.
        updates: list[float] = []

        async def updater(w: int) -> None:
            for i in range(w, n16 // 2, 16):
                patch = orjson.dumps({"data": {"index": f"u{i}"}})
                t0 = time.perf_counter()
                status, body = await load.request("PATCH", f"/api/v1/namespaces/bench-c16/configmaps/cm-{i}",
                                                  patch, "application/merge-patch+json")
                updates.append(time.perf_counter() - t0)
                assert status == 200, body[:300]

        await asyncio.gather(*(updater(w) for w in range(16)))
        mutating = c16["latencies"] + updates
        results["mutating_p50_ms"] = pct(mutating, 0.5) * 1e3
        results["mutating_p99_ms"] = pct(mutating, 0.99) * 1e3

        gets: list[float] = []
        for i in range(1000 if quick else 3000):
            t0 = time.perf_counter()
            name = f"cm-{(i * 7919) % c16['count']}"
            status, _ = await load.request("GET", f"/api/v1/namespaces/bench-c16/configmaps/{name}")
            gets.append(time.perf_counter() - t0)
            assert status == 200
        results["get_p50_ms"] = pct(gets, 0.5) * 1e3
        results["get_p99_ms"] = pct(gets, 0.99) * 1e3

        pods = await load.create_many("/api/v1/namespaces/bench-list/pods", lambda i: pod(f"pod-{i:05d}"), 16, 10_000)
        results["pod_create_16"] = pods["rate"]
        results["settle_before_lists_s"] = await server.settle()
        lists: list[float] = []
        cpu0 = server.cpu_s()
        for _ in range(3 if quick else 10):
            t0 = time.perf_counter()
            status, body = await load.request("GET", "/api/v1/namespaces/bench-list/pods")
            lists.append(time.perf_counter() - t0)
            assert status == 200
        results["list_server_cpu_ms"] = (server.cpu_s() - cpu0) / len(lists) * 1e3
        assert len(orjson.loads(body)["items"]) == pods["count"]
        results["list_pods"] = pods["count"]
        results["list_p50_ms"] = pct(lists, 0.5) * 1e3
        results["list_p99_ms"] = pct(lists, 0.99) * 1e3

    results["watch"] = await watch_fanout(server, ssl_ctx, 1000, 3 if quick else 10)
    return results


async def watch_fanout(server: ServerProcess, ssl_ctx: ssl.SSLContext, watchers: int, events: int) -> dict[str, Any]:
    """One write at a time; for each, the time until the last of ``watchers`` has read it."""
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    path = "/api/v1/namespaces/bench-watch/configmaps"
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        load = Load(server.url, http)
        status, body = await load.request("GET", path)
        rv = orjson.loads(body)["metadata"]["resourceVersion"]
        seen: dict[str, int] = {}
        arrived: dict[str, asyncio.Event] = {}
        opened = 0
        all_open = asyncio.Event()

        async def watcher() -> None:
            nonlocal opened
            async with http.get(f"{server.url}{path}?watch=true&resourceVersion={rv}&timeoutSeconds=600") as resp:
                assert resp.status == 200
                opened += 1
                if opened == watchers:
                    all_open.set()
                async for line in resp.content:
                    name = orjson.loads(line)["object"]["metadata"]["name"]
                    seen[name] = seen.get(name, 0) + 1
                    if seen[name] == watchers:
                        arrived[name].set()

        tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
        try:
            await asyncio.wait_for(all_open.wait(), 120)
            samples = []
            for i in range(events + 1):  # the first one is a warm-up
                name = f"w-{i}"
                arrived[name] = asyncio.Event()
                t0 = time.perf_counter()
                status, body = await load.request("POST", path, configmap(name, i))
                assert status == 201, body[:300]
                await asyncio.wait_for(arrived[name].wait(), 60)
                if i:
                    samples.append(time.perf_counter() - t0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"watchers": watchers, "events": len(samples), "p50_ms": pct(samples, 0.5) * 1e3,
            "max_ms": max(samples) * 1e3}


async def startup_phase(tmp: Path, starts: int) -> dict[str, Any]:
    """Fresh data dirs (first start, PKI generated) and restarts on the same dir."""
    first, again, rss, first_cpu, again_cpu = [], [], [], [], []
    failed: list[str] = []
    for n in range(starts):
        data_dir = tmp / f"start-{n}"
        server = ServerProcess(data_dir)
        try:
            first.append(await server.start())
            first_cpu.append(server.ready_cpu_s)
        finally:
            server.stop()
        server = ServerProcess(data_dir)
        try:
            again.append(await server.start())
            again_cpu.append(server.ready_cpu_s)
            await server.wait_kubeconfig()  # fully started (controllers too)
            await asyncio.sleep(2)  # let start-up work settle
            rss.append(server.rss_mb())
        except RuntimeError as exc:  # reported, and the other starts still count
            failed.append(str(exc))
            print(f"restart {n} failed: {exc}", file=sys.stderr)
        finally:
            server.stop()
    return {"failed_restarts": failed, "ready_first_s": first, "ready_restart_s": again, "idle_rss_mb": rss,
            "ready_first_cpu_s": first_cpu, "ready_restart_cpu_s": again_cpu}


def summarize(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, value, goal ratio, upstream ratio); ratio > 1 is better than the reference."""
    s = r["startup"]
    med = statistics.median
    ready_first, ready_restart, rss = med(s["ready_first_s"]), med(s["ready_restart_s"]), med(s["idle_rss_mb"])
    lo16, hi16 = UPSTREAM["create_16"]
    lo1, hi1 = UPSTREAM["create_1"]
    rows = [
        ("ready, first start (PKI); CPU used by then",
         f"{ready_first:.2f} s; {med(s['ready_first_cpu_s']):.2f} s", f"{GOALS['ready_s'] / ready_first:.2f}",
         f"{UPSTREAM['ready_s'] / ready_first:.2f}"),
        ("ready, restart; CPU used by then",
         f"{ready_restart:.2f} s; {med(s['ready_restart_cpu_s']):.2f} s", f"{GOALS['ready_s'] / ready_restart:.2f}",
         f"{UPSTREAM['ready_s'] / ready_restart:.2f}"),
        ("idle RSS", f"{rss:.1f} MB", f"{GOALS['idle_rss_mb'] / rss:.2f}", f"{UPSTREAM['idle_rss_mb'] / rss:.2f}"),
        ("creates/s, 16 clients", f"{r['create_16']:.0f}", f"{r['create_16'] / hi16:.2f}",
         f"{r['create_16'] / hi16:.2f}-{r['create_16'] / lo16:.2f}"),
        ("creates/s, 1 client", f"{r['create_1']:.0f}", f"{r['create_1'] / hi1:.2f}",
         f"{r['create_1'] / hi1:.2f}-{r['create_1'] / lo1:.2f}"),
        ("server CPU per create (16 / 1 clients)",
         f"{r['create_16_server_cpu_ms']:.2f} / {r['create_1_server_cpu_ms']:.2f} ms", "", ""),
        ("get p50 / p99", f"{r['get_p50_ms']:.1f} / {r['get_p99_ms']:.1f} ms", "", ""),
        ("mutating p50 / p99 (16 clients)", f"{r['mutating_p50_ms']:.0f} / {r['mutating_p99_ms']:.0f} ms",
         f"{GOALS['mutating_p99_s'] * 1e3 / r['mutating_p99_ms']:.1f}", ""),
        (f"list {r['list_pods']} pods p50 / p99 (server CPU per list {r['list_server_cpu_ms']:.0f} ms)",
         f"{r['list_p50_ms']:.0f} / {r['list_p99_ms']:.0f} ms",
         f"{GOALS['list_10k_p99_s'] * 1e3 / r['list_p99_ms']:.1f}", ""),
        ("pod creates/s, 16 clients", f"{r['pod_create_16']:.0f}", "", ""),
        (f"watch fan-out to {r['watch']['watchers']}, p50 / max",
         f"{r['watch']['p50_ms']:.0f} / {r['watch']['max_ms']:.0f} ms", "", ""),
        ("RSS after the load", f"{r['rss_after_load_mb']:.0f} MB", "", ""),
    ]
    if s["failed_restarts"]:
        rows.append(("restarts that failed (see stderr)", str(len(s["failed_restarts"])), "", ""))
    return rows


def _rounded(startup: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {k: [round(x, 3) if isinstance(x, float) else x for x in v] for k, v in startup.items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smaller run of the same measures (< 2 minutes)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--starts", type=int, default=None, help="start/restart pairs to time")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up measures (ready time, RSS)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # 1,000 watch connections
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sampan-bench-api-") as tmpname:
        tmp = Path(tmpname)
        results["startup"] = await startup_phase(tmp, args.starts or (2 if args.quick else 5))
        if args.startup_only:
            print("startup:", json.dumps(_rounded(results["startup"])))
            return
        server = ServerProcess(tmp / "load")
        try:
            await server.start()
            ssl_ctx = client_ssl(await server.wait_kubeconfig(), tmp)
            results.update(await load_phase(server, ssl_ctx, args.quick))
            results["rss_after_load_mb"] = server.rss_mb()
        finally:
            server.stop()
    rows = summarize(results)
    print("| measure | sampan | ×goal | ×upstream |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("raw:", json.dumps({k: v for k, v in results.items() if k != "startup"}, default=str))
    print("startup:", json.dumps(_rounded(results["startup"])))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())

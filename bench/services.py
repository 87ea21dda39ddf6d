"""Service proxy benchmark (needs root, nft, wrk and nginx; all traffic stays in netns it makes).

    python bench/services.py [--quick] [--duration S] [--connections N] [--sizes 1000,10000]

(a) data path: requests/s and p99 from a client pod through a ClusterIP (the proxy's
    nftables DNAT) vs directly to the pod IP, both with keep-alive connections and with
    a new connection per request (where the DNAT and conntrack work happens). The backend
    is nginx in a pod netns answering a fixed body; the load is `wrk` in a closed loop.
(b) control path: time to generate and load (`nft -f`) the ruleset for N Services with
    10 endpoints each: first load, a full re-sync that replaces the table, and a partial
    sync after one endpoint of one service changed (what the proxier sends normally).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampan.proxy.rules import NodeInfo, PortsCache, build_ruleset, render_ruleset, service_ports  # noqa: E402
from sampan.proxy.ruleset import diff_text, full_text  # noqa: E402
from tests.proxy.netns import TestNet, sh, wait_serving  # noqa: E402

UPSTREAM = "kube-proxy nftables mode: 3,595 services / 138,792 endpoints synced in 2.84 s"
CIP = "198.19.0.10"
TABLE = "sampan-bench-services"


def node_info(net: TestNet) -> NodeInfo:
    return NodeInfo("bench", (net.node_ip,), "198.18.0.0/16", "198.19.0.0/16")


def service(i: int, ip: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "bench", "name": f"svc-{i}"},
            "spec": {"clusterIP": ip, "type": "NodePort" if i % 10 == 0 else "ClusterIP",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30000 + i // 10}]}}


def endpoint_slice(i: int, ips: list[str]) -> dict[str, Any]:
    return {"metadata": {"namespace": "bench", "name": f"svc-{i}-1", "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def nft(ns: str, text: str) -> float:
    started = time.perf_counter()
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, capture_output=True)
    if r.returncode:
        raise RuntimeError(r.stderr[:2000])
    return time.perf_counter() - started


def program(ns: str, n: int, endpoints: int = 10) -> dict[str, float]:
    services, slices = [], []
    for i in range(n):
        services.append(service(i, f"198.19.{i // 250}.{i % 250 + 1}"))
        base = i * endpoints
        addrs = [(base + k) % 62500 for k in range(endpoints)]  # stay inside 198.18.0.0/16
        slices.append(endpoint_slice(i, [f"198.18.{a // 250 + 1}.{a % 250 + 1}" for a in addrs]))
    for obj in services + slices:
        obj["metadata"]["resourceVersion"] = "1"
    node = NodeInfo("bench", ("198.18.0.1",), "198.18.0.0/16", "198.19.0.0/16")
    cache = PortsCache()  # what the proxier keeps between syncs
    started = time.perf_counter()
    old = render_ruleset(TABLE, cache.ports(services, slices), node)
    text = full_text(old)
    generate = time.perf_counter() - started
    first = nft(ns, text)
    started = time.perf_counter()
    again = full_text(render_ruleset(TABLE, service_ports(services, slices), node))
    resync = time.perf_counter() - started + nft(ns, again)
    # One pod of one service replaced: the usual change, sent as a partial sync.
    slices[n // 2]["endpoints"][0]["addresses"] = ["198.18.255.250"]
    slices[n // 2]["metadata"]["resourceVersion"] = "2"
    started = time.perf_counter()
    new = render_ruleset(TABLE, cache.ports(services, slices), node)
    diff = diff_text(old, new) or ""
    partial_nft = nft(ns, diff)
    partial = time.perf_counter() - started
    return {"services": n, "endpoints": n * endpoints, "generate_s": generate, "first_load_s": first,
            "full_resync_s": resync, "partial_sync_s": partial, "partial_nft_s": partial_nft, "ruleset_mb": len(text) / 1e6}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def wrk(ns: str, url: str, duration: int, connections: int, close: bool) -> dict[str, float]:
    extra = ["-H", "Connection: close"] if close else []
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *extra, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await proc.communicate())[0].decode()
    rps, p99 = re.search(r"Requests/sec:\s+([\d.]+)", out), re.search(r"\s99%\s+(\S+)", out)
    if not (rps and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return {"rps": float(rps.group(1)), "p99_ms": _ms(p99.group(1))}


def start_nginx(net: TestNet, workdir: Path) -> subprocess.Popen[bytes]:
    prefix = workdir / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    tmp = "".join(f"  {k}_temp_path {prefix / 'tmp' / k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\ndaemon off;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n  access_log off;\n{tmp}  server {{ listen 80 reuseport; keepalive_requests 1000000;\n"
        "    location / { return 200 'ok\\n'; } }\n}\n")
    return subprocess.Popen(["ip", "netns", "exec", net.pods[0].netns, "nginx", "-c", str(conf), "-p", str(prefix)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def data_path(args: argparse.Namespace) -> dict[str, Any]:
    net = TestNet()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        nginx = None
        try:
            net.setup_node(Path(tmp))
            # Every closed connection keeps a conntrack entry for the TIME_WAIT timeout (120 s);
            # a minute of connection-per-request load would fill the (host-wide) table and
            # drop SYNs, measuring the table size instead of the proxy.
            sh("ip", "netns", "exec", net.node_ns, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=2")
            pod = net.add_pod(0, serve=False)
            client = net.add_pod(1, serve=False)
            nginx = start_nginx(net, Path(tmp))
            await wait_serving(net.node_ns, f"http://{pod.ip}/")
            svc = {"metadata": {"namespace": "bench", "name": "web"}, "spec": {"clusterIP": CIP, "ports": [{"port": 80}]}}
            nft(net.node_ns, build_ruleset(TABLE, [svc], [endpoint_slice(0, [pod.ip]) | {
                "metadata": {"namespace": "bench", "name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
                "ports": [{"port": 80, "protocol": "TCP"}]}], node_info(net)))
            await wait_serving(client.netns, f"http://{CIP}/")
            for close in (False, True):
                mode = "new connection per request" if close else "keep-alive"
                runs: dict[str, list[dict[str, float]]] = {"pod": [], "clusterip": []}
                for _ in range(args.rounds):  # alternate so drift hits both sides alike
                    for name, url in (("pod", f"http://{pod.ip}/"), ("clusterip", f"http://{CIP}/")):
                        runs[name].append(await wrk(client.netns, url, args.duration, args.connections, close))
                # The machine is shared: compare round by round and keep the median ratio.
                ratios = sorted(c["rps"] / p["rps"] for p, c in zip(runs["pod"], runs["clusterip"]))
                med = {k: sorted(v, key=lambda r: r["rps"])[len(v) // 2] for k, v in runs.items()}
                results[mode] = {**med, "ratio": ratios[len(ratios) // 2], "ratios": ratios}
        finally:
            if nginx is not None:
                nginx.kill()
                nginx.wait()
            net.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    # services x endpoints-per-service; 3595x39 is the shape of upstream's data point.
    parser.add_argument("--sizes", default="1000x10,10000x10,3595x39")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--programming-only", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds, args.sizes = 2, 1, "1000x10"
    out: dict[str, Any] = {"data_path": {} if args.programming_only else await data_path(args), "programming": []}
    for mode, r in out["data_path"].items():
        print(f"{mode}: pod {r['pod']['rps']:.0f} req/s p99 {r['pod']['p99_ms']:.2f} ms | "
              f"clusterIP {r['clusterip']['rps']:.0f} req/s p99 {r['clusterip']['p99_ms']:.2f} ms | ratio {r['ratio']:.3f}")
    for size in args.sizes.split(","):
        # A fresh netns per size: a "first load" must not also delete the previous size's table.
        ns = f"spxbench-{int(time.time())}"
        sh("ip", "netns", "add", ns)
        try:
            n, _, per = size.partition("x")
            r = program(ns, int(n), int(per or 10))
            out["programming"].append(r)
            print(f"{n} services / {r['endpoints']} endpoints: generate {r['generate_s']:.2f} s, "
                  f"first nft load {r['first_load_s']:.2f} s, full re-sync {r['full_resync_s']:.2f} s, "
                  f"partial sync (one endpoint changed) {r['partial_sync_s'] * 1000:.0f} ms "
                  f"(nft {r['partial_nft_s'] * 1000:.0f} ms) "
                  f"({r['ruleset_mb']:.1f} MB ruleset)")
        finally:
            sh("ip", "netns", "del", ns, check=False)
    print(f"upstream data point: {UPSTREAM}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

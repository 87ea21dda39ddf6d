"""Cluster DNS benchmark: UDP queries/s for Service A records.

    python bench/cluster_dns.py [--duration S] [--services N] [--window W]

The server (sampan.proxy.dns.ClusterDNS over an in-memory registry holding N Services) runs
in this process on 127.0.0.1; the load comes from a separate process that keeps W queries
in flight over one UDP socket (closed loop) asking for the N names in turn. Measured:
(a) the reply cache on (the common case: the same names asked again and again),
(b) the reply cache off (parse, look up, build and render every reply),
(c) peer: dnsmasq (Debian `dnsmasq-base`) answering the same N names from a hosts file,
    started here in the same invocation, when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def load(host: str, port: int, seconds: float, window: int, names: list[str]) -> float:
    """Closed-loop UDP load; returns replies/s after a short warm-up."""
    import dns.message

    wires = [dns.message.make_query(n, "A").to_wire() for n in names]
    loop = asyncio.get_running_loop()
    state = {"done": 0, "next": 0}

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            state["done"] += 1
            state["next"] += 1
            self.transport.sendto(wires[state["next"] % len(wires)])

    transport, proto = await loop.create_datagram_endpoint(Proto, remote_addr=(host, port))

    def fill() -> None:
        for k in range(window):
            state["next"] += 1
            transport.sendto(wires[state["next"] % len(wires)])

    fill()
    await asyncio.sleep(0.5)  # warm-up
    start_count, started = state["done"], time.perf_counter()
    last = state["done"]
    while time.perf_counter() - started < seconds:
        await asyncio.sleep(0.2)
        if state["done"] == last:
            fill()  # replies lost (socket buffers): put the window back
        last = state["done"]
    rate = (state["done"] - start_count) / (time.perf_counter() - started)
    transport.close()
    return rate


def run_load(port: int, args: argparse.Namespace, names: list[str]) -> float:
    cmd = [sys.executable, __file__, "--load", str(port), "--duration", str(args.duration), "--window", str(args.window)]
    out = subprocess.run(cmd, input=json.dumps(names), text=True, capture_output=True, check=True)
    return float(json.loads(out.stdout)["qps"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_dnsmasq(args: argparse.Namespace, names: list[str], ips: list[str]) -> float | None:
    binary = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        hosts = Path(tmp) / "hosts"
        hosts.write_text("".join(f"{ip} {name}\n" for name, ip in zip(names, ips)))
        os.chmod(tmp, 0o755)
        hosts.chmod(0o644)
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--keep-in-foreground", "-C", "/dev/null", "--pid-file=", f"--port={port}", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--cache-size=10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            return run_load(port, args, names)
        finally:
            proc.terminate()
            proc.wait(10)


async def main(args: argparse.Namespace) -> None:
    from sampan.client.interface import SERVICES
    from sampan.client.local import LocalClient
    from sampan.proxy.dns import ClusterDNS
    from sampan.registry.registry import Registry
    from sampan.server import bootstrap
    from sampan.store.memory import MemoryStore

    store = MemoryStore()
    await store.start()
    reg = Registry(store, service_cidr="198.19.0.0/16")
    await bootstrap(reg)
    client = LocalClient(reg, field_manager="bench")
    names, ips = [], []
    for i in range(args.services):
        ip = f"198.19.{i // 250 + 1}.{i % 250 + 1}"
        svc = {"metadata": {"name": f"svc-{i}"}, "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}}
        await client.create(SERVICES, svc, "default")
        names.append(f"svc-{i}.default.svc.cluster.local")
        ips.append(ip)
    server = ClusterDNS(client, "127.0.0.1", port=0, upstreams=[])
    await server.start()
    results: dict[str, Any] = {"services": args.services, "window": args.window}
    try:
        results["sampan_cached_qps"] = await asyncio.to_thread(run_load, server.port, args, names)
        server.handler.cache_size = 0
        server.handler.invalidate()
        results["sampan_uncached_qps"] = await asyncio.to_thread(run_load, server.port, args, names)
    finally:
        await server.stop()
        await store.close()
    peer = bench_dnsmasq(args, names, ips)
    if peer is not None:
        results["dnsmasq_qps"] = peer
        results["sampan_cached/dnsmasq"] = results["sampan_cached_qps"] / peer
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--load", type=int, default=0, help=argparse.SUPPRESS)  # the load process: target port
    opts = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if opts.load:
        qps = asyncio.run(load("127.0.0.1", opts.load, opts.duration, opts.window, json.loads(sys.stdin.read())))
        print(json.dumps({"qps": qps}))
    else:
        asyncio.run(main(opts))

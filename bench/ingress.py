"""Ingress data path benchmark: nginx config vs in-process proxy vs plain nginx.

    python bench/ingress.py [--quick] [--duration S] [--connections N] [--json FILE]

One invocation runs, against the same backend (an nginx instance answering a fixed
body, so the proxy is what is measured):

- peer: a hand-written nginx `proxy_pass` to the backend (keepalive upstream);
- sampan/nginx: the IngressController's generated config served by Debian's nginx;
- sampan/inprocess: the IngressController's aiohttp reverse proxy (this process, uvloop);
- the two sampan paths again over HTTPS (TLS from a Secret, SNI).

The ingress controller talks to a real in-process API server (memory store) holding a
Service, an EndpointSlice and an Ingress. Load: `wrk` (Debian package), a closed loop with
a fixed number of connections for a fixed time, so the load is bounded. Reports
requests/s and p99 latency per target and the ratios to the peer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampan.client.interface import ENDPOINTSLICES, SECRETS, SERVICES  # noqa: E402
from sampan.client.local import LocalClient  # noqa: E402
from sampan.ingress import IngressController  # noqa: E402
from sampan.ingress.controller import INGRESSES  # noqa: E402
from sampan.ingress.nginx import NginxProcess, nginx_binary, self_signed_pem  # noqa: E402
from sampan.server import ServerOptions, start_server  # noqa: E402

HOST = "bench.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_conf(prefix: Path, body: str) -> str:
    tmp = "".join(f"  {k}_temp_path {prefix / 'tmp' / k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"worker_processes auto;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        "daemon off;\nevents { worker_connections 4096; multi_accept on; }\n"
        f"http {{\n  access_log off;\n{tmp}{body}}}\n"
    )


async def start_nginx(root: Path, name: str, body: str) -> NginxProcess:
    prefix = root / name
    (prefix / "tmp").mkdir(parents=True)
    proc = NginxProcess(prefix)
    if not await proc.apply(nginx_conf(prefix, body)):
        raise RuntimeError(f"{name}: nginx rejected its config")
    return proc


async def wait_port(port: int, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


async def wrk(url: str, duration: int, connections: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Host: {HOST}", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if not (rps and p99 and p50):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} error responses")
    return {"rps": float(rps.group(1)), "p50_ms": _ms(p50.group(1)), "p99_ms": _ms(p99.group(1))}


async def setup_cluster(client: LocalClient, backend_port: int) -> None:
    pem = self_signed_pem(HOST, [HOST])
    crt, _, key = pem.partition(b"-----END CERTIFICATE-----\n")
    crt += b"-----END CERTIFICATE-----\n"
    await client.create(SECRETS, {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {
        "tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}, "default")
    await client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {"ports": [
        {"name": "http", "port": 80, "targetPort": backend_port}]}}, "default")
    await client.create(ENDPOINTSLICES, {
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend_port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}, "default")
    await client.create(INGRESSES, {"metadata": {"name": "web"}, "spec": {
        "tls": [{"hosts": [HOST], "secretName": "tls"}],
        "rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "web", "port": {"number": 80}}}}]}}]}}, "default")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if nginx_binary() is None or shutil.which("wrk") is None:
        raise SystemExit("needs Debian packages nginx and wrk")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backend_port, peer_port = free_port(), free_port()
        backend = await start_nginx(root, "backend", (
            f"  server {{ listen 127.0.0.1:{backend_port}; "
            "location / { default_type text/plain; return 200 'hello from the backend\\n'; } }\n"))
        peer = await start_nginx(root, "peer", (
            f"  upstream be {{ server 127.0.0.1:{backend_port}; keepalive 64; }}\n"
            f"  server {{ listen 127.0.0.1:{peer_port}; location / {{ proxy_pass http://be; "
            "proxy_http_version 1.1; proxy_set_header Connection ''; proxy_set_header Host $host; } }\n"))
        server = await start_server(ServerOptions(
            data_dir=root / "server", port=0, datastore="memory", controllers=[], scheduler=False))
        client = LocalClient(server.registry, field_manager="bench")
        controllers: list[IngressController] = []
        try:
            await setup_cluster(client, backend_port)
            targets: list[tuple[str, str]] = [("peer nginx proxy_pass", f"http://127.0.0.1:{peer_port}/")]
            for kind in ("nginx", "inprocess"):
                http, https = free_port(), free_port()
                c = IngressController(client, root / kind, http, https, "127.0.0.1", ["127.0.0.1"], data_path=kind)
                await c.start()
                controllers.append(c)
                targets.append((f"sampan/{kind} http", f"http://127.0.0.1:{http}/"))
                targets.append((f"sampan/{kind} https", f"https://127.0.0.1:{https}/"))
            for name, url in targets:
                await wait_port(int(url.rsplit(":", 1)[1].strip("/")))
                await wrk(url, 1, args.connections)  # warm-up: connections, TLS sessions, upstream keepalive
                results[name] = await wrk(url, args.duration, args.connections)
                r = results[name]
                print(f"{name:28s} {r['rps']:>10,.0f} req/s   p50 {r['p50_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms",
                      flush=True)
        finally:
            for c in controllers:
                await c.stop()
            await server.stop()
            await peer.stop()
            await backend.stop()
    base = results["peer nginx proxy_pass"]["rps"]
    for name, r in results.items():
        r["ratio_to_peer"] = round(r["rps"] / base, 3)
    print("\nthroughput relative to the plain nginx proxy_pass:")
    for name, r in results.items():
        print(f"  {name:28s} {r['ratio_to_peer']:.2f}x")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per target")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.duration = 3
    results = uvloop.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""What a joined node agent keeps in memory: the modules its start-up path loads (big libraries
stay out of the long-running process: cryptography runs in child processes, aiohttp loads on
the first exec/logs session, image pull or HTTP probe), and the network services sharing one
informer per resource, cached without managedFields."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from pathlib import Path

import pytest

from sampan.client.interface import SERVICES
from sampan.client.local import LocalClient
from sampan.node import subcall
from sampan.node.netservices import NodeNetworkServices
from sampan.node.runner import read_join_token
from sampan.server import RunningServer

ROOT = Path(__file__).resolve().parents[2]
# Loaded by the agent only when something needs them (or never): each costs MBs of RSS.
HEAVY = ["aiohttp", "cryptography", "yaml", "kubernetes_validate", "sampan.registry", "sampan.store",
         "sampan.apiserver.app", "sampan.controllers"]

# The modules `sampan agent --server URL --token T` imports before and while it starts, then the
# serving certificate flow against a real server (issued, then kept across a restart).
AGENT_SCRIPT = r"""
import asyncio, json, sys
from pathlib import Path
import sampan.cli, sampan.node.runner, sampan.node.remote_streams, sampan.node.netservices
import sampan.proxy.proxier, sampan.proxy.netpol, sampan.proxy.dns
import sampan.node.runtimes.select, sampan.node.images, sampan.node.cni, sampan.node.cgroups, sampan.node.probes
from sampan.client.lite import LiteHttpClient
from sampan.node import servingcert
from sampan.node.lazyserve import LazyServer

async def main():
    url, token, directory = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    async with LiteHttpClient(url, False, token=token) as client:
        first = await servingcert.ensure(client, directory, "n1", ["n1", "127.0.0.1"])
        again = await servingcert.ensure(client, directory, "n1", ["n1", "127.0.0.1"])
    listening = LazyServer(None, "127.0.0.1", 0, None)  # the exec/logs endpoint before any session
    await listening.start()
    await listening.stop()
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY or any(m.startswith(h + ".") or m == h
                                                                            for h in HEAVY))
    print(json.dumps({"heavy": heavy, "cert": str(first.cert_path), "same": first.renew_at == again.renew_at,
                      "modules": len(sys.modules)}))

HEAVY = json.loads(sys.argv[4])
asyncio.run(main())
"""


async def test_agent_start_path_leaves_heavy_modules_out(server: RunningServer, tmp_path: Path) -> None:
    token = read_join_token(tmp_path / "server")
    assert token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT_SCRIPT, server.url, token, str(tmp_path / "serving"), json.dumps(HEAVY),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    found = json.loads(out.decode().strip().splitlines()[-1])
    assert found["heavy"] == []
    assert found["same"]  # the second start kept the issued certificate
    cert = Path(found["cert"]).read_text()
    assert cert.startswith("-----BEGIN CERTIFICATE-----")
    # The certificate the child processes made and checked is one TLS accepts with its key.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(found["cert"], str(tmp_path / "serving" / "kubelet.key"))


async def test_subcall_returns_results_and_raises_errors() -> None:
    assert await subcall.call("os.path:join", "a", "b") == "a/b"
    with pytest.raises(json.JSONDecodeError):
        await subcall.call("json:loads", "{not json")
    with pytest.raises(ModuleNotFoundError):
        await subcall.call("no_such_module_here:f")
    with pytest.raises(subcall.SubcallError, match="exit 3"):
        await subcall.call("os:_exit", 3)  # a child that dies without an answer
    with pytest.raises(TimeoutError):
        await subcall.call("time:sleep", 30, timeout=0.5)  # killed, not waited for


async def test_network_services_share_compact_informers(server: RunningServer, tmp_path: Path) -> None:
    client = LocalClient(server.registry)
    net = NodeNetworkServices(client, "n1", "127.0.0.1", "198.18.0.0/16", "198.19.0.0/16", tmp_path / "node",
                              disabled=["kube-proxy", "network-policy", "ingress"], dns_port=0,
                              pod_cidr_timeout=0.3)
    await net.start()
    try:
        await asyncio.wait_for(net.started.wait(), 60)
        assert net.dns is not None and net.errors == {}
        assert net.dns.factory is net.informers  # one watch per resource for every part
        services = net.informers.informer(SERVICES)
        assert services in net.dns.informers
        await services.wait_for_sync(10)
        stored = await client.get(SERVICES, "kubernetes", "default")
        assert stored["metadata"].get("managedFields")
        cached = services.get("default/kubernetes")
        assert cached is not None and cached["spec"]["clusterIP"] == "198.19.0.1"
        assert "managedFields" not in cached["metadata"]
    finally:
        await net.stop()
    assert net.informers is None


async def test_lazy_server_builds_the_app_on_the_first_connection() -> None:
    from aiohttp import web

    from sampan.node.lazyserve import LazyServer

    built: list[web.AppRunner] = []

    async def make_runner() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/hello", lambda request: web.Response(text="hi"))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        built.append(runner)
        return runner

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # sent before the app exists
        data = await reader.read()
        writer.close()
        return data

    server = LazyServer(make_runner, "127.0.0.1", 0, None)
    port = await server.start()
    try:
        assert port and built == []  # listening, nothing built yet
        first, second = await asyncio.gather(get(), get())  # both wait for the one build
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"hi")
        assert second.startswith(b"HTTP/1.1 200")
        assert (await get()).endswith(b"hi")  # later connections go straight to aiohttp
        assert len(built) == 1
    finally:
        await server.stop()

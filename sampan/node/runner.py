"""Putting a real node agent together: the join token, the runtime chosen by ``--runtime``,
the image store, the pod network (once node IPAM gave the node its podCIDR), cgroups. Used by
``sampan server`` (the in-process agent) and ``sampan agent --server URL --token T``."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import secrets
import socket
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sampan.api.errors import APIError
from sampan.client.http import HttpClient
from sampan.node.agent import NodeAgent
from sampan.node.netservices import attach_network_services

log = logging.getLogger(__name__)
JOIN_USER = "system:node-join"
JOIN_GROUPS = "system:nodes,system:bootstrappers"


def token_files(data_dir: Path) -> tuple[Path, Path]:
    server = Path(data_dir) / "server"
    return server / "join-token", server / "tokens.csv"


def ensure_join_token(data_dir: Path) -> str:
    """The cluster's join token (created once): a static token of a node identity (group system:nodes)."""
    path, table = token_files(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = path.read_text().strip() if path.exists() else ""
    if not token:
        token = secrets.token_hex(24)
        path.write_text(token + "\n")
        path.chmod(0o600)
    known = table.read_text() if table.exists() else ""
    if token not in known:
        with open(table, "a", newline="") as f:
            if known and not known.endswith("\n"):
                f.write("\n")
            csv.writer(f).writerow([token, JOIN_USER, "sampan-node-join", JOIN_GROUPS])
        table.chmod(0o600)
    return token


def read_join_token(data_dir: Path) -> str | None:
    path, _ = token_files(data_dir)
    return path.read_text().strip() if path.exists() else None


def local_address_towards(url: str) -> str:
    """The address this machine uses to reach the server (a UDP connect sends nothing)."""
    host = urlparse(url).hostname or "127.0.0.1"
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return str(s.getsockname()[0])
    return "127.0.0.1"


async def build_agent(client: Any, node_name: str, data_dir: Path, runtime_choice: str, node_ip: str,
                      **kw: Any) -> NodeAgent:
    from sampan.node.cgroups import Cgroups
    from sampan.node.cni import PodNetwork
    from sampan.node.images import ImageStore, store_root
    from sampan.node.runtimes.select import select_runtime

    data_dir = Path(data_dir)
    cgroups = Cgroups()
    runtime, why = await select_runtime(runtime_choice, data_dir / "agent" / "runtime", cgroups)
    log.warning("%s", why) if not getattr(runtime, "isolates", True) else log.info("%s", why)
    images = ImageStore(store_root(data_dir))
    cni_state = data_dir / "agent" / "cni"
    cluster_cidr = kw.pop("cluster_cidr", None)  # not masqueraded: the node-wide rule's exception

    def pod_network(cidr: str) -> Any:
        return PodNetwork(cidr, cni_state, cluster_cidr=cluster_cidr)

    network: Any = pod_network
    if os.geteuid() != 0:
        log.warning("not running as root: no pod network, pods use the host's network")
        network = None
    return NodeAgent(client, node_name, data_dir, runtime, images, network, cgroups, node_ip=node_ip, **kw)


def _eviction_config(config: Any) -> Any:
    """Real nodes evict under pressure with the kubelet's defaults unless told otherwise."""
    from sampan.node.eviction import EvictionConfig

    return config if config is not None else EvictionConfig()


async def ensure_storage_class(client: Any) -> None:
    from sampan.node.localpath import STORAGECLASSES, storage_class

    with contextlib.suppress(Exception):
        await client.create(STORAGECLASSES, storage_class())


async def start_local_agent(url: str, ca_path: Path, data_dir: Path, node_name: str, runtime: str,
                            node_ip: str, streams: Any = None, network: dict[str, Any] | None = None,
                            eviction: Any = None, allowed_unsafe_sysctls: tuple[str, ...] = ()) -> NodeAgent:
    """The agent inside ``sampan server``: talks to its own server over HTTPS with the join token."""
    token = ensure_join_token(data_dir)
    ctx = ssl.create_default_context(cafile=str(ca_path))
    client = HttpClient(url, ctx, token=token)
    await ensure_storage_class(client)
    agent = await build_agent(client, node_name, data_dir, runtime, node_ip, close_client=True,
                              cluster_cidr=(network or {}).get("cluster_cidr"),
                              eviction=_eviction_config(eviction), allowed_unsafe_sysctls=allowed_unsafe_sysctls)
    net = attach_network_services(agent, network)  # proxy, DNS, NetworkPolicy, ingress: stopped by agent.stop()
    await agent.start()
    if net is not None:
        await net.start()
    if streams is not None:
        from sampan.node.streams import AgentStreams

        streams.register(node_name, AgentStreams(agent))
    return agent


async def run_remote_agent(server: str, token: str, node_name: str, data_dir: Path, runtime: str = "auto",
                           network: dict[str, Any] | None = None, kubelet_port: int = 10250,
                           eviction: Any = None, allowed_unsafe_sysctls: tuple[str, ...] = ()) -> None:
    """``sampan agent --server URL --token T``: runs until SIGTERM; the containers outlive it."""
    import signal

    from sampan.client.lite import LiteHttpClient  # without aiohttp: ~12 MB less (see lite.py)
    from sampan.node import jointoken

    try:
        expected_ca, token = jointoken.parse_token(token)
        if expected_ca:  # the server must show the CA the token names, under the API server's name
            ctx = await jointoken.trusted_context(server, expected_ca)
            client = LiteHttpClient(server, ctx, token=token, server_hostname=jointoken.SERVER_NAME)
        else:
            log.warning("the join token has no CA hash: the server's certificate is not verified "
                        "(`sampan token` prints one with the hash)")
            client = LiteHttpClient(server, False, token=token)
    except jointoken.JoinError as exc:
        raise SystemExit(f"cannot join {server}: {exc}") from None
    agent = await build_agent(client, node_name, data_dir, runtime, local_address_towards(server),
                              cluster_cidr=(network or {}).get("cluster_cidr"),
                              eviction=_eviction_config(eviction), allowed_unsafe_sysctls=allowed_unsafe_sysctls)
    net = attach_network_services(agent, network)
    from sampan.node.remote_streams import AgentEndpoint

    endpoint = AgentEndpoint(agent, token, port=kubelet_port)  # exec/logs/port-forward for the API server
    try:
        await endpoint.start()  # first gets its serving certificate signed by the cluster CA
    except APIError as exc:  # refused (not a node, names not its own): retrying would not help
        await client.close()
        raise SystemExit(f"the server refused to sign this node's serving certificate: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
        if net is not None:
            await net.start()
        print(f"sampan agent ready: node {node_name} joined {server}", flush=True)
        from sampan.node.heaptrim import trim_periodically

        trimming = asyncio.create_task(trim_periodically(), name="heap trim")  # start-up garbage: ~1 MB
        try:
            await stop.wait()
        finally:
            trimming.cancel()
    finally:
        await agent.stop()
        await endpoint.stop()
        await client.close()

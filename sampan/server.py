"""``sampan server``: the store, the registry and the HTTPS API server in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from sampan.api import errors
from sampan.apiserver.app import build_app
from sampan.apiserver.crds import CRDController
from sampan.client.compact import informer_transform
from sampan.client.informer import InformerFactory
from sampan.client.local import LocalClient
from sampan.controllers.base import ControllerOptions
from sampan.controllers.manager import ControllerManager
from sampan.registry.kubernetes_service import advertise_address, ensure_kubernetes_service, repair_allocations
from sampan.registry import default_tolerations, serviceaccount_admission
from sampan.registry.options import WriteOptions
from sampan.registry.registry import Registry
from sampan.scheduler import Scheduler, SchedulerConfig
from sampan.store import Store, open_store

log = logging.getLogger(__name__)
# Concurrent writes of the controllers together (ReplicaSets creating hundreds of pods at once
# would otherwise queue every API request behind them on the one event loop).
CONTROLLER_WRITES_IN_FLIGHT = 32

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
BOOTSTRAP_MANAGER = "sampan-bootstrap"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "default-scheduler"


@dataclass
class ServerOptions:
    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443
    datastore: str = "sqlite"
    # The in-process node agent (the CLI runs one unless --no-agent; off by default for embedders).
    agent: bool = False
    node_name: str | None = None
    runtime: str = "auto"
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    # Packaged components the in-process agent does not run (K3s --disable): ingress, servicelb,
    # coredns, network-policy, kube-proxy; its node address (default: the advertised address).
    disable: list[str] = field(default_factory=list)
    node_ip: str | None = None
    ingress_http_port: int = 80
    ingress_https_port: int = 443
    extra_hostnames: list[str] = field(default_factory=list)
    # Which in-process control loops run: None = all registered ones.
    controllers: list[str] | None = None
    disabled_controllers: list[str] = field(default_factory=list)
    # Run the scheduler in-process (off: pods stay Pending unless something else binds them).
    scheduler: bool = True
    # A KubeSchedulerConfiguration file (YAML or JSON) for it, like kube-scheduler's --config.
    scheduler_config: Path | None = None
    # Node lifecycle (upstream's kube-controller-manager/kube-apiserver flags; tests shorten them).
    node_monitor_grace_period: float = 40.0
    default_not_ready_toleration_seconds: int = 300
    default_unreachable_toleration_seconds: int = 300
    # The in-process agent's node-pressure eviction (sampan.node.eviction.EvictionConfig; None: defaults).
    eviction: Any = None
    allowed_unsafe_sysctls: tuple[str, ...] = ()  # beyond the safe ones (--allowed-unsafe-sysctls)


@dataclass
class RunningServer:
    url: str
    kubeconfig: Path
    registry: Registry
    store: Store
    runner: web.AppRunner
    controllers: ControllerManager | None = None
    crds: CRDController | None = None
    scheduler: Scheduler | None = None
    agent: Any = None
    remote_streams: Any = None
    informers: InformerFactory | None = None  # shared by the controllers and the scheduler

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()  # the containers keep running; a new agent re-adopts them
        if self.remote_streams is not None:
            await self.remote_streams.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.crds is not None:
            await self.crds.stop()
        if self.controllers is not None:
            await self.controllers.stop()
        if self.informers is not None:
            await self.informers.stop()
        await self.runner.cleanup()
        await self.store.close()


async def bootstrap(registry: Registry) -> None:
    """The namespaces every cluster has, each with its ``default`` ServiceAccount."""
    opts = WriteOptions(field_manager=BOOTSTRAP_MANAGER)
    namespaces = registry.must("", "v1", "namespaces")
    accounts = registry.must("", "v1", "serviceaccounts")
    for name in DEFAULT_NAMESPACES:
        for store, ns, obj in (
            (namespaces, "", {"metadata": {"name": name}}),
            (accounts, name, {"metadata": {"name": "default", "namespace": name}}),
        ):
            try:
                await store.create(ns, obj, opts)
            except errors.APIError as exc:
                if exc.code != 409:
                    raise


def _certificate_names(options: ServerOptions) -> tuple[list[str], list[str]]:
    from sampan.apiserver.pkifiles import certificate_names

    return certificate_names(options.bind_address, options.service_cidr, options.extra_hostnames)


def _authenticator(pki: Any, data_dir: Path) -> Any:
    from sampan.apiserver.authn import Authenticator

    token_file = data_dir / "server" / "tokens.csv"
    return Authenticator(pki.ca_cert_path, token_file if token_file.exists() else None, [pki.sa_pub_path])


async def _wait_ready(url: str, ssl_ctx: ssl.SSLContext) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url + "/readyz", ssl=ssl_ctx) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url}/readyz did not become ready")


async def start_server(options: ServerOptions) -> RunningServer:
    """Starts serving and returns once /readyz answers ok and the kubeconfig is written."""
    from sampan.apiserver.pkifiles import ensure_pki_files, server_ssl_context, write_kubeconfig

    data_dir = Path(options.data_dir)
    (data_dir / "server").mkdir(parents=True, exist_ok=True)
    # The PKI is checked (or created) by a child process while the store opens and the
    # cluster objects are set up; a failed start-up leaves nothing behind but its files.
    pki_task = asyncio.ensure_future(ensure_pki_files(data_dir / "server" / "tls", *_certificate_names(options)))
    pki_task.add_done_callback(lambda t: t.cancelled() or t.exception())
    store = await open_store(options.datastore, data_dir)
    registry = Registry(store, service_cidr=options.service_cidr)
    if _runs_controller(options, "serviceaccount"):
        serviceaccount_admission.install(registry)  # pods need the accounts that controller makes
    default_tolerations.configure(
        registry, options.default_not_ready_toleration_seconds, options.default_unreachable_toleration_seconds
    )
    await bootstrap(registry)
    await repair_allocations(registry)  # before serving, so no create is in flight
    crds = CRDController(registry)
    await crds.start()  # stored CRDs are served before /readyz says ok
    pki = await pki_task
    from sampan.node.runner import ensure_join_token
    from sampan.node.streams import NodeStreams

    join_token = await asyncio.to_thread(ensure_join_token, data_dir)  # `sampan token` prints it; agents join with it
    streams = NodeStreams()
    started = asyncio.Event()  # /readyz fails until the `kubernetes` Service is in place
    app = build_app(registry, _authenticator(pki, data_dir), pki, stream_backend=streams, ready=started)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    # Open watches would otherwise hold a shutdown for a minute; clients reconnect anyway.
    site = web.TCPSite(
        runner, options.bind_address, options.port, ssl_context=server_ssl_context(pki), shutdown_timeout=2.0
    )
    await site.start()
    port = runner.addresses[0][1]
    host = "127.0.0.1" if options.bind_address in ("0.0.0.0", "") else options.bind_address
    host = f"[{host}]" if ":" in host else host
    url = f"https://{host}:{port}"
    await ensure_kubernetes_service(registry, options.bind_address, port)
    started.set()
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_cert_path))
    await _wait_ready(url, client_ctx)
    ca_pem = await asyncio.to_thread(pki.ca_cert_path.read_bytes)
    # One informer per collection for the controllers and the scheduler: each object is cached
    # once, in a compact read-only form (sampan/client/compact.py).
    informers = InformerFactory(LocalClient(registry, field_manager=CONTROLLER_MANAGER), transform=informer_transform())
    controllers = await _start_controllers(registry, options, port, ca_pem, informers)
    scheduler = await _start_scheduler(registry, options, informers) if options.scheduler else None
    from sampan.node.remote_streams import RemoteNodeStreams

    streams.remote = RemoteNodeStreams(LocalClient(registry, field_manager="kube-apiserver"), join_token,
                                       pki.ca_cert_path)
    await streams.remote.start()  # exec/attach/port-forward/logs of pods on remote agents
    kubeconfig = data_dir / "kubeconfig.yaml"
    await asyncio.to_thread(write_kubeconfig, kubeconfig, url, pki)
    agent = None
    if options.agent:
        from sampan.node.runner import start_local_agent

        agent = await start_local_agent(url, pki.ca_cert_path, data_dir, options.node_name or socket.gethostname(),
                                        options.runtime, options.node_ip or advertise_address(options.bind_address),
                                        streams, network_options(options), options.eviction,
                                        options.allowed_unsafe_sysctls)
    return RunningServer(url, kubeconfig, registry, store, runner, controllers, crds, scheduler=scheduler, agent=agent,
                         remote_streams=streams.remote, informers=informers)


def _runs_controller(options: ServerOptions, name: str) -> bool:
    return (options.controllers is None or name in options.controllers) and name not in options.disabled_controllers


def network_options(options: ServerOptions) -> dict[str, Any]:
    """The in-process agent's network services (sampan/node/netservices.py); ingress on this node only."""
    return {"cluster_cidr": options.cluster_cidr, "service_cidr": options.service_cidr, "ingress": True,
            "disabled": list(options.disable), "ingress_http_port": options.ingress_http_port,
            "ingress_https_port": options.ingress_https_port}


async def _start_scheduler(
    registry: Registry, options: ServerOptions, informers: InformerFactory | None = None
) -> Scheduler:
    path = options.scheduler_config
    config = await asyncio.to_thread(SchedulerConfig.from_file, path) if path else None
    scheduler = Scheduler(LocalClient(registry, field_manager=SCHEDULER), config, informers=informers)
    await scheduler.start()
    return scheduler


async def _start_controllers(
    registry: Registry, options: ServerOptions, port: int, ca_pem: bytes = b"", informers: InformerFactory | None = None
) -> ControllerManager:
    settings = ControllerOptions(
        service_cidr=options.service_cidr,
        cluster_cidr=options.cluster_cidr,
        node_monitor_grace_period=options.node_monitor_grace_period,
    )
    # Where the `kubernetes` Service points (its controller keeps it in place).
    settings.extra["apiserver"] = (advertise_address(options.bind_address), port)
    settings.extra["ca_pem"] = ca_pem  # published as kube-root-ca.crt in every namespace
    client = LocalClient(registry, field_manager=CONTROLLER_MANAGER, max_in_flight_writes=CONTROLLER_WRITES_IN_FLIGHT)
    disabled = [*options.disabled_controllers, *(c for c in options.disable if c == "servicelb")]
    manager = ControllerManager(client, options.controllers, settings, disabled, informers)
    await manager.start()
    return manager


async def run_server(options: ServerOptions) -> None:
    server = await start_server(options)
    print(f"sampan server ready at {server.url} (kubeconfig: {server.kubeconfig})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)  # close the store cleanly instead of dying mid-write
    try:
        await stop.wait()
    finally:
        await server.stop()

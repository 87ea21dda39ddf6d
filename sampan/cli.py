"""The ``sampan`` command."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
from pathlib import Path
from typing import Any

import click
import uvloop


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/sampan")
    return Path.home() / ".local" / "share" / "sampan"


def kubelet_options(command: Any) -> Any:
    """The kubelet's flags for real nodes: node-pressure eviction, unsafe sysctls."""
    options = [
        click.option("--eviction-hard", default=None, metavar="SIGNAL<VALUE,...",
                     help="Hard eviction thresholds, e.g. memory.available<100Mi,nodefs.available<10% (replaces "
                          "the defaults memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,"
                          "nodefs.inodesFree<5%; empty: none)"),
        click.option("--eviction-soft", default=None, metavar="SIGNAL<VALUE,...",
                     help="Soft eviction thresholds (each needs --eviction-soft-grace-period)"),
        click.option("--eviction-soft-grace-period", default=None, metavar="SIGNAL=DURATION,...",
                     help="How long a soft threshold must hold before pods are evicted, e.g. memory.available=1m30s"),
        click.option("--eviction-max-pod-grace-period", default=0, show_default=True, type=click.IntRange(min=0),
                     help="Longest grace period (seconds) given to pods evicted for a soft threshold"),
        click.option("--eviction-pressure-transition-period", default="5m", show_default=True,
                     help="How long a pressure condition stays True after its threshold is no longer met"),
        click.option("--eviction-monitoring-interval", default="10s", show_default=True,
                     help="How often the node looks at its resources (at most one eviction each time)"),
        click.option("--allowed-unsafe-sysctls", default="", metavar="NAME|PREFIX*,...",
                     help="Namespaced sysctls pods may set beyond the safe ones, e.g. net.core.somaxconn,kernel.msg*"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def unsafe_sysctls(flags: dict[str, Any]) -> tuple[str, ...]:
    from .node.sysctls import Allowlist

    names = tuple(n.strip() for n in (flags.get("allowed_unsafe_sysctls") or "").split(",") if n.strip())
    try:
        Allowlist(names)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allowed-unsafe-sysctls") from None
    return names


def eviction_config(flags: dict[str, Any]) -> Any:
    from .node.eviction import EvictionConfig

    try:
        return EvictionConfig.from_flags(
            flags.get("eviction_hard"), flags.get("eviction_soft"), flags.get("eviction_soft_grace_period"),
            flags.get("eviction_pressure_transition_period"), flags.get("eviction_monitoring_interval"),
            int(flags.get("eviction_max_pod_grace_period") or 0))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="eviction flags") from None


@click.group()
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def main(log_level: str) -> None:
    """Sampan: a small, fast, Kubernetes-compatible container orchestrator."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A crash below Python (an abort in a C library) still prints every thread's Python stack.
    with contextlib.suppress(OSError, ValueError):  # a captured stderr has no file descriptor
        faulthandler.enable()


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="State directory [default: /var/lib/sampan as root, else ~/.local/share/sampan]")
@click.option("--bind-address", default="127.0.0.1", show_default=True)
@click.option("--port", default=6443, show_default=True, type=int, help="HTTPS port (0 picks a free one)")
@click.option("--datastore", default="sqlite", show_default=True, help="sqlite | memory | etcd://host:port[,host:port]")
@click.option("--no-agent", is_flag=True, help="Do not run a node agent in this process")
@click.option("--node-name", default=None, help="Name of this node [default: the host name]")
@click.option("--runtime", default="auto", show_default=True, type=click.Choice(["auto", "raw", "oci", "cri"]))
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True)
@click.option("--service-cidr", default="10.43.0.0/16", show_default=True)
@click.option("--disable", multiple=True,
              type=click.Choice(["ingress", "servicelb", "coredns", "network-policy", "kube-proxy"]),
              help="Do not run this packaged component (repeatable)")
@click.option("--node-ip", default=None, help="IPv4 address of this node [default: the advertised address]")
@click.option("--ingress-http-port", default=80, show_default=True, type=click.IntRange(1, 65535),
              help="Host port of the packaged Ingress controller for HTTP")
@click.option("--ingress-https-port", default=443, show_default=True, type=click.IntRange(1, 65535),
              help="Host port of the packaged Ingress controller for HTTPS")
@click.option("--node-monitor-grace-period", default=40.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a node may miss heartbeats before it is marked NotReady (kube-controller-manager's flag)")
@click.option("--default-not-ready-toleration-seconds", default=300, show_default=True, type=click.IntRange(min=0),
              help="tolerationSeconds added to pods for the node.kubernetes.io/not-ready:NoExecute taint")
@click.option("--default-unreachable-toleration-seconds", default=300, show_default=True, type=click.IntRange(min=0),
              help="tolerationSeconds added to pods for the node.kubernetes.io/unreachable:NoExecute taint")
@kubelet_options
def server(data_dir: Path | None, bind_address: str, port: int, datastore: str, no_agent: bool,
           node_name: str | None, runtime: str, cluster_cidr: str, service_cidr: str,
           node_monitor_grace_period: float, default_not_ready_toleration_seconds: int,
           default_unreachable_toleration_seconds: int, disable: tuple[str, ...] = (), node_ip: str | None = None,
           ingress_http_port: int = 80, ingress_https_port: int = 443, **kubelet_flags: Any) -> None:
    """Run a whole cluster in this process."""
    eviction = eviction_config(kubelet_flags)
    from .apiserver import pkifiles

    # The PKI is checked (or created) by a child process while this one imports the server.
    data_dir = data_dir or default_data_dir()
    pkifiles.prestart(data_dir / "server" / "tls", *pkifiles.certificate_names(bind_address, service_cidr, []))
    from .server import ServerOptions, run_server

    options = ServerOptions(
        data_dir=data_dir or default_data_dir(), bind_address=bind_address, port=port, datastore=datastore,
        agent=not no_agent, node_name=node_name, runtime=runtime, cluster_cidr=cluster_cidr,
        service_cidr=service_cidr, node_monitor_grace_period=node_monitor_grace_period,
        default_not_ready_toleration_seconds=default_not_ready_toleration_seconds,
        default_unreachable_toleration_seconds=default_unreachable_toleration_seconds,
        disable=list(disable), node_ip=node_ip, ingress_http_port=ingress_http_port,
        ingress_https_port=ingress_https_port, eviction=eviction,
        allowed_unsafe_sysctls=unsafe_sysctls(kubelet_flags),
    )
    try:
        uvloop.run(run_server(options))
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--simulate", type=click.IntRange(min=1), default=None, metavar="N",
              help="Register N simulated nodes (KWOK-like) instead of running pods on this machine")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Kubeconfig of the cluster [default: $KUBECONFIG, else DATA_DIR/kubeconfig.yaml]")
@click.option("--server", default=None, help="URL of the server to join (real nodes)")
@click.option("--token", default=None, help="Join token (see `sampan token`)")
@click.option("--node-name", default=None, help="Name of this node [default: the host name]")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--runtime", default="auto", show_default=True, type=click.Choice(["auto", "raw", "oci"]))
@click.option("--node-cpu", default="4", show_default=True, help="Simulated nodes: CPU capacity")
@click.option("--node-memory", default="16Gi", show_default=True, help="Simulated nodes: memory capacity")
@click.option("--node-pods", default=110, show_default=True, type=click.IntRange(min=1),
              help="Simulated nodes: pod capacity")
@click.option("--name-prefix", default="sim-", show_default=True, help="Simulated nodes are named PREFIX0 .. PREFIX(N-1)")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True,
              help="Simulated pod addresses when a node has no spec.podCIDR (yet): a block per node")
@click.option("--service-cidr", default="10.43.0.0/16", show_default=True,
              help="Real nodes: the cluster's service CIDR")
@click.option("--disable", multiple=True, type=click.Choice(["coredns", "network-policy", "kube-proxy"]),
              help="Real nodes: do not run this node component (repeatable)")
@click.option("--job-duration", default="1s", show_default=True,
              help="Simulated Job pods finish after this long (annotation sampan.dev/simulate-duration overrides)")
@click.option("--node-lease-renew-interval", default=10.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between the nodes' lease renewals (the kubelet renews every 10 s)")
@click.option("--kubelet-port", default=10250, show_default=True, type=click.IntRange(min=0, max=65535),
              help="Real nodes: HTTPS port for exec/attach/port-forward/logs from the API server (0: any free)")
@kubelet_options
def agent(simulate: int | None, kubeconfig: str | None, server: str | None, token: str | None,
          node_name: str | None, data_dir: Path | None, runtime: str, node_cpu: str, node_memory: str, node_pods: int,
          name_prefix: str, cluster_cidr: str, job_duration: str, node_lease_renew_interval: float,
          service_cidr: str = "10.43.0.0/16", disable: tuple[str, ...] = (), kubelet_port: int = 10250,
          **kubelet_flags: Any) -> None:
    """Run a node agent (with --simulate N: N simulated nodes)."""
    if simulate is None:
        if not server or not token:
            raise click.UsageError("joining a node needs --server URL and --token T (see `sampan token`)")
        import socket

        from .node.runner import run_remote_agent

        try:
            uvloop.run(run_remote_agent(server, token, node_name or socket.gethostname(),
                                        data_dir or default_data_dir(), runtime,
                                        {"cluster_cidr": cluster_cidr, "service_cidr": service_cidr,
                                         "disabled": list(disable)}, kubelet_port,
                                        eviction_config(kubelet_flags), unsafe_sysctls(kubelet_flags)))
        except KeyboardInterrupt:
            pass
        return
    import aiohttp

    from .api.errors import APIError
    from .node.simulated import SimulatedOptions, run_simulated
    from .node.simulated_pods import parse_duration

    try:
        duration = parse_duration(job_duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--job-duration") from None
    config = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    config = config or str((data_dir or default_data_dir()) / "kubeconfig.yaml")
    if not Path(config).is_file():
        raise click.UsageError(f"kubeconfig {config} not found (pass --kubeconfig)")
    options = SimulatedOptions(
        count=simulate, name_prefix=name_prefix, cpu=node_cpu, memory=node_memory, pods=node_pods,
        cluster_cidr=cluster_cidr, job_duration=duration, renew_interval=node_lease_renew_interval,
    )
    try:
        uvloop.run(run_simulated(config, options))
    except KeyboardInterrupt:
        pass
    except (OSError, aiohttp.ClientError, APIError) as exc:
        raise click.ClickException(f"could not register the simulated nodes: {exc}") from None


@main.group()
def images() -> None:
    """Container images stored on this node."""


@images.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def images_import(files: tuple[Path, ...], data_dir: Path | None) -> None:
    """Import docker-archive or oci-archive tarballs (plain or gzip)."""
    from .node.images import ImageError, ImageStore, store_root

    async def run() -> list[str]:
        store = ImageStore(store_root(data_dir or default_data_dir()))
        refs: list[str] = []
        for file in files:
            refs.extend(await store.import_archive(file))
        return refs

    try:
        for ref in uvloop.run(run()):
            click.echo(f"Imported {ref}")
    except (ImageError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@images.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def images_list(data_dir: Path | None) -> None:
    """List the images stored on this node."""
    from .node.images import ImageStore, store_root

    store = ImageStore(store_root(data_dir or default_data_dir()))
    click.echo(f"{'IMAGE':<60} {'IMAGE ID':<14} SIZE")
    for info in store.list():
        for ref in info.repo_tags or [info.id]:
            click.echo(f"{ref:<60} {info.id[7:20]:<14} {info.size / 1e6:.1f}MB")


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The server's state directory [default: /var/lib/sampan as root, else ~/.local/share/sampan]")
def token(data_dir: Path | None) -> None:
    """Print the join token for `sampan agent --server URL --token T`: K10<CA hash>::<secret>,
    so the agent can check that it joins this cluster's server."""
    from .node.jointoken import format_token
    from .node.runner import read_join_token

    data_dir = data_dir or default_data_dir()
    found = read_join_token(data_dir)
    if not found:
        raise click.ClickException("no join token yet: start `sampan server` with this --data-dir first")
    ca = data_dir / "server" / "tls" / "ca.crt"
    click.echo(format_token(found, ca.read_bytes() if ca.exists() else None))


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The node's state directory [default: /var/lib/sampan as root, else ~/.local/share/sampan]")
def killall(data_dir: Path | None) -> None:
    """Stop every pod of this node and remove what they use on the machine (containers, network
    namespaces, mounts, cgroups, nftables tables, the pod bridge). Stop sampan first; pods'
    data (volumes, logs, images) stays."""
    from .node import killall as cleanup

    if os.geteuid() != 0:
        raise click.ClickException("killall needs root")
    data = data_dir or default_data_dir()
    pid = cleanup.running_node(data, default=data_dir is None)
    if pid is not None:
        raise click.ClickException(f"sampan (pid {pid}) is still running with {data}: stop it first")
    done = uvloop.run(cleanup.killall(data))
    click.echo(", ".join(f"{count} {kind}" for kind, count in done.items()) + " removed")


if __name__ == "__main__":
    main()

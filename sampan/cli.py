"""The ``sampan`` command."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
import uvloop


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/sampan")
    return Path.home() / ".local" / "share" / "sampan"


@click.group()
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def main(log_level: str) -> None:
    """Sampan: a small, fast, Kubernetes-compatible container orchestrator."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
def server(data_dir: Path | None, bind_address: str, port: int, datastore: str, no_agent: bool,
           node_name: str | None, runtime: str, cluster_cidr: str, service_cidr: str) -> None:
    """Run a whole cluster in this process."""
    from .server import ServerOptions, run_server

    options = ServerOptions(
        data_dir=data_dir or default_data_dir(), bind_address=bind_address, port=port, datastore=datastore,
        agent=not no_agent, node_name=node_name, runtime=runtime, cluster_cidr=cluster_cidr,
        service_cidr=service_cidr,
    )
    try:
        uvloop.run(run_server(options))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

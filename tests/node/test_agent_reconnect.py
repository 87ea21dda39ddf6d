"""A joined agent (``sampan agent --server URL --token T``, whose client is LiteHttpClient)
carries on across a restart of the server: its kept-alive connections and watches break, and
it reconnects, renews its Lease and reports its Node Ready again."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cluster import KUBECTL, Cluster, start_process, stop_process

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
NODE = "reconnect-node"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(data: Path, port: int) -> Cluster:
    proc, output = start_process(["server", "--data-dir", str(data), "--datastore", "sqlite", "--port", str(port),
                                  "--no-agent"])
    return Cluster(data, proc, output)


def _renewed(cluster: Cluster) -> str:
    lease = json.loads(cluster.kubectl("get", "lease", NODE, "-n", "kube-node-lease", "-o", "json",
                                       check=False).stdout or "{}")
    return str((lease.get("spec") or {}).get("renewTime") or "")


def _wait(check: object, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()  # type: ignore[operator]
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError("condition not met")


def test_agent_reconnects_after_server_restart(tmp_path: Path) -> None:
    port = _free_port()
    data = tmp_path / "server"
    cluster = _server(data, port)
    agent = None
    try:
        token = subprocess.run([sys.executable, "-m", "sampan", "token", "--data-dir", str(data)],
                               capture_output=True, text=True, check=True).stdout.strip()
        agent, _ = start_process(["agent", "--server", f"https://127.0.0.1:{port}", "--token", token,
                                  "--node-name", NODE, "--data-dir", str(tmp_path / "node"), "--runtime", "raw",
                                  "--kubelet-port", "0",
                                  "--disable", "kube-proxy", "--disable", "network-policy", "--disable", "coredns"])
        _wait(lambda: _renewed(cluster), 30)

        stop_process(cluster.proc)
        time.sleep(1.5)  # the agent's requests fail meanwhile; it keeps going
        assert agent.poll() is None
        cluster = _server(data, port)
        before = _renewed(cluster)
        assert _wait(lambda: _renewed(cluster) not in ("", before), 30)  # renewing again, over new connections
        node = json.loads(cluster.kubectl("get", "node", NODE, "-o", "json").stdout)
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"
        assert agent.poll() is None
    finally:
        if agent is not None:
            stop_process(agent)
        stop_process(cluster.proc)

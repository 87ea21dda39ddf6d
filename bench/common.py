"""Process plumbing shared by the benchmarks that run real ``sampan`` processes: start one and
wait for its ready line, stop them, and read a process's CPU time and RSS from /proc."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def start(args: list[str], word: str, timeout: float) -> tuple[subprocess.Popen[str], float]:
    """Runs ``python -m sampan ARGS`` and waits for ``word`` in its output; returns the process
    and the seconds it took. Tracebacks and ERROR lines are passed on to stderr."""
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "sampan", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    ready = threading.Event()
    tail: collections.deque[str] = collections.deque(maxlen=60)
    proc.tail = tail  # type: ignore[attr-defined]  # the last lines, shown when it dies

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            if word in line:
                ready.set()
            elif "Traceback" in line or "ERROR" in line:
                sys.stderr.write(line)

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout):
        proc.kill()
        raise SystemExit(f"sampan {args[0]} did not start within {timeout:.0f} s")
    return proc, time.monotonic() - began


def start_server(data_dir: str, datastore: str, timeout: float) -> subprocess.Popen[str]:
    """``sampan server`` with no agent on a random port; it writes DATA_DIR/kubeconfig.yaml."""
    proc, _ = start(["server", "--data-dir", data_dir, "--datastore", datastore, "--port", "0", "--no-agent"],
                    "sampan server ready", timeout)
    return proc


def start_simulated_nodes(kubeconfig: Path, nodes: int, timeout: float) -> tuple[subprocess.Popen[str], float]:
    """``sampan agent --simulate NODES``; returns it once every node is registered, and how long that took."""
    return start(["agent", "--simulate", str(nodes), "--kubeconfig", str(kubeconfig)], "sampan agent ready", timeout)  # not "already exists"


def stop(*procs: subprocess.Popen[str] | None) -> None:
    """Terminates each process (None is skipped), killing it after 20 s."""
    for proc in procs:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def node_ready(client: Any, name: str, timeout: float, interval: float = 0.2) -> None:
    """Waits until Node ``name`` is Ready with a pod CIDR (``client``: a sampan HttpClient)."""
    from sampan.client.interface import NODES

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            node = await client.get(NODES, name)
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
            if conds.get("Ready") == "True" and node["spec"].get("podCIDR"):
                return
        except Exception:  # noqa: BLE001 - not registered yet
            pass
        await asyncio.sleep(interval)
    raise SystemExit(f"node {name} did not become Ready")

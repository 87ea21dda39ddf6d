"""A real ``sampan server`` (and ``sampan agent``) subprocess for end-to-end tests, and a
kubectl runner bound to its kubeconfig."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


class Cluster:
    def __init__(self, data_dir: Path, proc: subprocess.Popen[str], output: list[str]) -> None:
        self.data_dir = data_dir
        self.proc = proc
        self.output = output
        self.kubeconfig = data_dir / "kubeconfig.yaml"
        self.cache = data_dir / "kubectl-cache"

    def kubectl(self, *args: str, check: bool = True, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def stop(self) -> None:
        stop_process(self.proc)


def get_json(cluster: Cluster, *args: str) -> Any:
    """``kubectl get ARGS -o json``, parsed."""
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Polls ``check`` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            name = getattr(check, "__name__", "check")
            raise AssertionError(f"condition not met within {timeout} s: {name}")
        time.sleep(interval)


def start_process(args: list[str], ready_word: str = "ready", timeout: float = 60) -> tuple[subprocess.Popen[str], list[str]]:
    """Starts ``python -m sampan ARGS`` and waits for a line containing ``ready_word``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sampan", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ready = threading.Event()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if ready_word in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout):
        stop_process(proc)
        raise AssertionError(f"sampan {' '.join(args)} did not become ready:\n" + "".join(output))
    return proc, output


def start_cluster(data_dir: Path, datastore: str = "memory", *extra: str) -> Cluster:
    args = ["server", "--data-dir", str(data_dir), "--datastore", datastore, "--port", "0", "--no-agent", *extra]
    proc, output = start_process(args)
    return Cluster(data_dir, proc, output)


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_cluster(proc: subprocess.Popen[str]) -> None:
    stop_process(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server per test module, on the memory store."""
    running = start_cluster(tmp_path_factory.mktemp("sampan"), "memory")
    try:
        yield running
    finally:
        running.stop()

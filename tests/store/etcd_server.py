"""Runs a real single-member etcd on free loopback ports for tests.

``start_etcd`` (async) and the ``etcd_server`` fixture (module scope, synchronous so
it works whatever event loop scope the tests use) both return an ``EtcdProcess``.
"""

from __future__ import annotations

import asyncio
import atexit
import http.client
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from typing import Iterator

import pytest

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
# Short periodic progress notifications let watch bookmarks advance on quiet prefixes.
PROGRESS_INTERVAL = "500ms"

_running: dict[int, subprocess.Popen[bytes]] = {}


def _kill_leftovers() -> None:
    for proc in list(_running.values()):
        if proc.poll() is None:
            proc.kill()


atexit.register(_kill_leftovers)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EtcdProcess:
    """One etcd member. ``stop()`` and ``start()`` keep the ports and data dir."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.data_dir = data_dir
        self.client_port = _free_port()
        self.peer_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _launch(self) -> None:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            ETCD,
            "--name=test",
            f"--data-dir={self.data_dir / 'data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-level=warn",
            f"--experimental-watch-progress-notify-interval={PROGRESS_INTERVAL}",
        ]
        with open(self.data_dir / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        _running[self.proc.pid] = self.proc

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=0.5)
        try:
            conn.request("GET", "/health")
            return b'"true"' in conn.getresponse().read()
        except OSError:
            return False
        finally:
            conn.close()

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.data_dir / "etcd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{log}")

    def start_blocking(self, timeout: float = 20.0) -> None:
        self._launch()
        deadline = time.monotonic() + timeout
        while not self._healthy():
            self._check_alive()
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd at {self.endpoint} did not become healthy")
            time.sleep(0.05)

    async def start(self, timeout: float = 20.0) -> None:
        self._launch()
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self._healthy):
            self._check_alive()
            if time.monotonic() > deadline:
                await self.stop_async()
                raise RuntimeError(f"etcd at {self.endpoint} did not become healthy")
            await asyncio.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminates this etcd by PID, waits, and kills it if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        _running.pop(proc.pid, None)

    async def stop_async(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, timeout)


def _attempts(data_dir: pathlib.Path) -> Iterator[EtcdProcess]:
    # A free port can be taken by someone else before etcd binds it: try fresh ports.
    for attempt in range(3):
        yield EtcdProcess(data_dir / f"etcd-{attempt}")


async def start_etcd(tmp_path: pathlib.Path) -> EtcdProcess:
    error: Exception | None = None
    for etcd in _attempts(tmp_path):
        try:
            await etcd.start()
            return etcd
        except RuntimeError as exc:
            error = exc
    raise RuntimeError(f"could not start etcd: {error}")


def start_etcd_blocking(tmp_path: pathlib.Path) -> EtcdProcess:
    error: Exception | None = None
    for etcd in _attempts(tmp_path):
        try:
            etcd.start_blocking()
            return etcd
        except RuntimeError as exc:
            error = exc
    raise RuntimeError(f"could not start etcd: {error}")


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """One etcd for the whole test module; tests isolate themselves by key prefix."""
    if not os.path.exists(ETCD):
        pytest.skip("etcd is not installed")
    etcd = start_etcd_blocking(tmp_path_factory.mktemp("etcd"))
    try:
        yield etcd
    finally:
        etcd.stop()

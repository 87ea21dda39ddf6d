"""Resource usage of the node and its pods, like the kubelet's resource metrics that
metrics-server scrapes: cpu as a rate (nanocores) over a window between two samples, memory as
the working set. ``ResourceMetrics`` samples every ``interval`` seconds and keeps the latest
snapshot, which the API server reads (in process through AgentStreams, or over the agent's
HTTPS endpoint at ``/metrics/resource``)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from sampan.node.agent import NodeAgent

log = logging.getLogger(__name__)
Obj = dict[str, Any]
# Upstream metrics-server's default resolution.
DEFAULT_INTERVAL = 15.0


@dataclass(frozen=True)
class CpuSample:
    """Cumulative cpu time (ns) used at ``at`` (a monotonic clock, seconds)."""

    used_ns: int
    at: float


def parse_proc_stat(text: str, clock_ticks: int) -> int:
    """Busy cpu time of all cpus in ns from /proc/stat (everything but idle and iowait)."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [int(v) for v in parts[1:]]
            # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
            busy = sum(values[:8]) - values[3] - (values[4] if len(values) > 4 else 0)
            return busy * 1_000_000_000 // clock_ticks
    raise ValueError("no cpu line in /proc/stat")


def parse_meminfo_working_set(text: str) -> int:
    """Node memory working set in bytes: MemTotal - MemAvailable."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        value = rest.split()
        if value:
            fields[key.strip()] = int(value[0]) * 1024
    return max(0, fields.get("MemTotal", 0) - fields.get("MemAvailable", 0))


def cpu_rate(prev: CpuSample | None, cur: CpuSample) -> int | None:
    """Nanocores used between two samples; None without a usable earlier sample (first one,
    a counter reset after a restart, or no time passed)."""
    if prev is None or cur.at <= prev.at or cur.used_ns < prev.used_ns:
        return None
    return int((cur.used_ns - prev.used_ns) / (cur.at - prev.at))


def _read_host() -> tuple[int, int]:
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path("/proc/stat").read_text()
    meminfo = Path("/proc/meminfo").read_text()
    return parse_proc_stat(stat, ticks), parse_meminfo_working_set(meminfo)


class ResourceMetrics:
    """Samples the node and the running containers of the agent's pods."""

    def __init__(self, agent: NodeAgent, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.agent = agent
        self.interval = interval
        self.clock = clock
        self.snapshot: Obj = {"node": None, "pods": []}
        self._node_prev: CpuSample | None = None
        self._prev: dict[str, CpuSample] = {}  # by container id

    async def run(self) -> None:
        # The first window is shorter so usage shows up soon after the agent starts.
        delay = min(self.interval, 5.0)
        while True:
            try:
                await self.collect()
            except Exception as exc:  # noqa: BLE001 - keep sampling; the next round may work
                log.debug("collecting resource metrics failed: %s", exc)
            await asyncio.sleep(delay)
            delay = self.interval

    async def collect(self) -> Obj:
        now_wall = time.time()
        try:
            used, memory = await asyncio.to_thread(_read_host)
            cur = CpuSample(used, self.clock())
            rate = cpu_rate(self._node_prev, cur)
            node = None
            if rate is not None and self._node_prev is not None:
                node = {"name": self.agent.node_name, "timestamp": now_wall, "window": cur.at - self._node_prev.at,
                        "cpu": rate, "memory": memory}
            self._node_prev = cur
        except (OSError, ValueError) as exc:
            log.debug("node usage unavailable: %s", exc)
            node = None
        pods = await self._pods(now_wall)
        self.snapshot = {"node": node or self.snapshot.get("node"), "pods": pods}
        return self.snapshot

    async def _pods(self, now_wall: float) -> list[Obj]:
        out: list[Obj] = []
        seen: set[str] = set()
        for worker in list(self.agent.workers.values()):
            containers: list[Obj] = []
            window = 0.0
            for t in worker.apps:
                if not t.running or t.id is None:
                    continue
                try:
                    stats = await self.agent.runtime.stats(t.id)
                except Exception:  # noqa: BLE001 - a container going away mid-sample
                    continue
                seen.add(t.id)
                cur = CpuSample(int(stats.cpu_usage_ns), self.clock())
                prev = self._prev.get(t.id)
                self._prev[t.id] = cur
                rate = cpu_rate(prev, cur)
                if rate is None or prev is None:
                    continue
                window = max(window, cur.at - prev.at)
                containers.append({"name": t.name, "cpu": rate, "memory": int(stats.memory_working_set_bytes)})
            if containers:
                m = worker.pod.get("metadata") or {}
                out.append({"namespace": m.get("namespace", ""), "name": m.get("name", ""), "uid": m.get("uid", ""),
                            "timestamp": now_wall, "window": window, "containers": containers})
        self._prev = {k: v for k, v in self._prev.items() if k in seen}
        return out

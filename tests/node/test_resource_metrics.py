"""Usage computation of the node agent's resource metrics (sampan/node/metrics.py) on fake samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from sampan.node import metrics
from sampan.node.metrics import CpuSample, ResourceMetrics, cpu_rate, parse_meminfo_working_set, parse_proc_stat
from sampan.node.runtimes.base import ContainerStats

PROC_STAT = """cpu  100 20 30 1000 50 5 5 0 0 0
cpu0 50 10 15 500 25 3 2 0 0 0
intr 12345
"""
MEMINFO = """MemTotal:        4000000 kB
MemFree:          500000 kB
MemAvailable:    3000000 kB
Buffers:           10000 kB
"""


def test_proc_stat_counts_busy_time_without_idle_and_iowait() -> None:
    # user+nice+system+irq+softirq+steal = 160 ticks at 100 Hz = 1.6 s.
    assert parse_proc_stat(PROC_STAT, 100) == 1_600_000_000


def test_proc_stat_without_cpu_line_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_proc_stat("intr 1\n", 100)


def test_meminfo_working_set_is_total_minus_available() -> None:
    assert parse_meminfo_working_set(MEMINFO) == 1_000_000 * 1024


def test_cpu_rate_in_nanocores() -> None:
    # 0.5 s of cpu over 2 s of wall time: half a core.
    assert cpu_rate(CpuSample(1_000_000_000, 10.0), CpuSample(2_000_000_000, 12.0)) == 500_000_000
    assert cpu_rate(None, CpuSample(5, 1.0)) is None
    assert cpu_rate(CpuSample(10, 1.0), CpuSample(5, 2.0)) is None  # counter went back: restarted
    assert cpu_rate(CpuSample(10, 1.0), CpuSample(20, 1.0)) is None  # no time passed


@dataclass
class FakeTracked:
    name: str
    id: str | None
    running: bool = True


@dataclass
class FakeWorker:
    pod: dict[str, Any]
    apps: list[FakeTracked]


@dataclass
class FakeRuntime:
    usage: dict[str, ContainerStats] = field(default_factory=dict)

    async def stats(self, container_id: str) -> ContainerStats:
        if container_id not in self.usage:
            raise KeyError(container_id)
        return self.usage[container_id]


@dataclass
class FakeAgent:
    runtime: FakeRuntime
    workers: dict[str, FakeWorker]
    node_name: str = "node-1"


async def test_collect_computes_node_and_container_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    host = [(1_000_000_000, 2048 * 1024)]
    monkeypatch.setattr(metrics, "_read_host", lambda: host[0])
    runtime = FakeRuntime({"c1": ContainerStats(1_000_000, 4096), "c2": ContainerStats(0, 10)})
    pod = {"metadata": {"namespace": "default", "name": "web", "uid": "u1"}}
    agent = FakeAgent(runtime, {"u1": FakeWorker(pod, [FakeTracked("app", "c1"), FakeTracked("side", "c2"),
                                                        FakeTracked("stopped", "c3", running=False),
                                                        FakeTracked("gone", "c4")])})
    rm = ResourceMetrics(agent, interval=15, clock=lambda: clock[0])  # type: ignore[arg-type]

    first = await rm.collect()
    assert first == {"node": None, "pods": []}  # one sample is not a rate yet

    clock[0] = 110.0
    host[0] = (6_000_000_000, 3072 * 1024)
    runtime.usage["c1"] = ContainerStats(2_001_000_000, 8192)
    runtime.usage["c2"] = ContainerStats(100_000_000, 20)
    snap = await rm.collect()
    node = snap["node"]
    assert node["name"] == "node-1" and node["window"] == 10.0
    assert node["cpu"] == 500_000_000 and node["memory"] == 3072 * 1024
    [p] = snap["pods"]
    assert (p["namespace"], p["name"], p["uid"], p["window"]) == ("default", "web", "u1", 10.0)
    assert p["containers"] == [{"name": "app", "cpu": 200_000_000, "memory": 8192},
                               {"name": "side", "cpu": 10_000_000, "memory": 20}]


async def test_restarted_container_waits_for_a_second_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(metrics, "_read_host", lambda: (0, 0))
    runtime = FakeRuntime({"old": ContainerStats(5_000, 1)})
    tracked = FakeTracked("app", "old")
    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"}}
    rm = ResourceMetrics(FakeAgent(runtime, {"u": FakeWorker(pod, [tracked])}),  # type: ignore[arg-type]
                         clock=lambda: clock[0])
    await rm.collect()
    # A new container id replaces the old one: no rate from the old container's counter.
    clock[0] = 15.0
    tracked.id = "new"
    runtime.usage = {"new": ContainerStats(1_000, 1)}
    assert (await rm.collect())["pods"] == []
    clock[0] = 30.0
    runtime.usage["new"] = ContainerStats(15_001_000, 1)
    [p] = (await rm.collect())["pods"]
    assert p["containers"][0]["cpu"] == 1_000_000
    assert set(rm._prev) == {"new"}  # the old container's sample is forgotten

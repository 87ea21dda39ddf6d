"""Cgroup layout detection, requests/limits mapping and pod cgroups on the real host."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sampan.node.cgroups import Cgroups, milli_cpu_to_shares, qos_class, shares_to_weight
from sampan.node.runtimes.base import Resources

HYBRID = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
"""
UNIFIED = "31 25 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"


def pod(*containers: dict, init: list[dict] | None = None) -> dict:
    spec: dict = {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)]
    return {"spec": spec}


def test_detects_hybrid_and_unified_layouts() -> None:
    hybrid = Cgroups(mountinfo=HYBRID)
    assert hybrid.mode == "hybrid"
    assert hybrid.v1["cpu"] == hybrid.v1["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert hybrid.unified == Path("/sys/fs/cgroup/unified")
    assert hybrid.dirs("/a/b", ("memory",)) == [Path("/sys/fs/cgroup/memory/a/b")]
    unified = Cgroups(mountinfo=UNIFIED)
    assert unified.mode in ("v2", "none")  # "v2" once /sys/fs/cgroup/cgroup.controllers exists
    assert Cgroups(mountinfo="").mode == "none"


def test_pod_parent_follows_the_qos_class() -> None:
    cg = Cgroups("sampan", mountinfo=HYBRID)
    assert cg.pod_parent("u1", "Guaranteed") == "sampan/kubepods/podu1"
    assert cg.pod_parent("u1", "Burstable") == "sampan/kubepods/burstable/podu1"
    assert cg.pod_parent("u1", "BestEffort") == "sampan/kubepods/besteffort/podu1"


def test_qos_classes() -> None:
    assert qos_class(pod({})) == "BestEffort"
    assert qos_class(pod({"limits": {"cpu": "1", "memory": "1Gi"}})) == "Guaranteed"
    assert qos_class(pod({"requests": {"cpu": "1000m", "memory": "1024Mi"},
                          "limits": {"cpu": "1", "memory": "1Gi"}})) == "Guaranteed"
    assert qos_class(pod({"requests": {"cpu": "100m"}})) == "Burstable"
    assert qos_class(pod({"limits": {"cpu": "1", "memory": "1Gi"}}, {})) == "Burstable"
    assert qos_class({"spec": {}, "status": {"qosClass": "Guaranteed"}}) == "Guaranteed"


def test_shares_and_weight_conversions() -> None:
    assert milli_cpu_to_shares(1000) == 1024
    assert milli_cpu_to_shares(100) == 102
    assert milli_cpu_to_shares(1) == 2
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39


def test_container_resources() -> None:
    cg = Cgroups(mountinfo=HYBRID)
    r = cg.resources_for({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "128Mi"}}})
    assert (r.cpu_shares, r.cpu_quota_us, r.cpu_period_us, r.memory_limit_bytes) == (256, 50_000, 100_000, 128 << 20)
    # No request: it defaults to the limit; tiny limits get the kernel's minimum quota.
    r = cg.resources_for({"resources": {"limits": {"cpu": "5m"}}})
    assert (r.cpu_shares, r.cpu_quota_us, r.memory_limit_bytes) == (5, 1000, None)
    assert cg.resources_for({}).cpu_shares == 2


def test_oom_score_adj_follows_the_kubelet() -> None:
    cg = Cgroups(mountinfo=HYBRID)
    assert cg.resources_for({}).oom_score_adj == 1000
    assert cg.resources_for({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}).oom_score_adj == -997
    small = cg.resources_for({"resources": {"requests": {"memory": "1Mi"}}}).oom_score_adj
    assert small is not None and 990 <= small <= 999
    huge = cg.resources_for({"resources": {"requests": {"memory": "100Pi"}}}).oom_score_adj
    assert huge == 2


def test_pod_resources_sum_and_need_every_limit() -> None:
    cg = Cgroups(mountinfo=HYBRID)
    both = pod({"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "64Mi"}},
               {"limits": {"cpu": "500m", "memory": "64Mi"}})
    r = cg.pod_resources(both)
    assert (r.cpu_shares, r.cpu_quota_us, r.memory_limit_bytes) == (614, 150_000, 128 << 20)
    partial = pod({"limits": {"cpu": "1", "memory": "64Mi"}}, {"requests": {"cpu": "1"}})
    r = cg.pod_resources(partial)
    assert (r.cpu_shares, r.cpu_quota_us, r.memory_limit_bytes) == (2048, None, None)
    big_init = pod({"limits": {"cpu": "1", "memory": "64Mi"}}, init=[{"limits": {"cpu": "2", "memory": "1Gi"}}])
    r = cg.pod_resources(big_init)
    assert (r.cpu_quota_us, r.memory_limit_bytes) == (200_000, 1 << 30)
    assert cg.pod_resources(pod({})).cpu_shares == 2


@pytest.fixture
def host_cgroups():
    cg = Cgroups(f"sampan-test-{uuid.uuid4().hex[:8]}")
    if os.geteuid() != 0 or not cg.available:
        pytest.skip("needs root and a cgroup filesystem")
    try:
        yield cg
    finally:
        cg.remove(cg.root_name)
    assert not any((h / cg.root_name).exists() for h in cg.hierarchies())


async def test_pod_cgroup_is_created_with_limits_and_removed(host_cgroups: Cgroups) -> None:
    cg = host_cgroups
    res = Resources(cpu_shares=512, cpu_quota_us=150_000, memory_limit_bytes=96 << 20, pids_limit=100)
    await cg.ensure_pod("abc", "Burstable", res)
    parent = cg.pod_parent("abc", "Burstable")
    if cg.mode == "v2":
        base = cg.unified / parent  # type: ignore[operator]
        assert (base / "cpu.max").read_text().split() == ["150000", "100000"]
        assert (base / "cpu.weight").read_text().strip() == str(shares_to_weight(512))
        assert (base / "memory.max").read_text().strip() == str(96 << 20)
    else:
        assert (cg.v1["cpu"] / parent / "cpu.cfs_quota_us").read_text().strip() == "150000"
        assert (cg.v1["cpu"] / parent / "cpu.shares").read_text().strip() == "512"
        assert (cg.v1["memory"] / parent / "memory.limit_in_bytes").read_text().strip() == str(96 << 20)
        assert (cg.v1["pids"] / parent / "pids.max").read_text().strip() == "100"
    # Running it again (an agent restart) is fine and can change the limits.
    await cg.ensure_pod("abc", "Burstable", Resources(cpu_shares=256))
    if cg.mode != "v2":
        assert (cg.v1["cpu"] / parent / "cpu.cfs_quota_us").read_text().strip() == "-1"
    stats = cg.stats(parent)
    assert stats.cpu_usage_ns == 0 and stats.memory_working_set_bytes == 0  # nothing runs in it
    assert cg.was_oom_killed(parent) is False
    await cg.remove_pod("abc", "Burstable")
    assert not any((h / parent).exists() for h in cg.hierarchies())


def test_stats_of_a_missing_cgroup_are_zero(host_cgroups: Cgroups) -> None:
    stats = host_cgroups.stats(f"/{host_cgroups.root_name}/nothing-here")
    assert (stats.cpu_usage_ns, stats.memory_working_set_bytes) == (0, 0)
    assert host_cgroups.was_oom_killed(f"/{host_cgroups.root_name}/nothing-here") is False


async def test_cgroup_v2_files_on_a_fake_unified_tree(tmp_path: Path) -> None:
    """The v2 code paths, against plain files laid out like a cgroup2 mount."""
    if os.geteuid() != 0:
        pytest.skip("cgroup management is only enabled as root")
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    cg = Cgroups("sampan", mountinfo=f"31 25 0:27 / {tmp_path} rw,relatime - cgroup2 cgroup2 rw\n")
    assert cg.mode == "v2"
    await cg.ensure_pod("u1", "Guaranteed", Resources(cpu_shares=1024, cpu_quota_us=50_000, memory_limit_bytes=1 << 20))
    pod_dir = tmp_path / "sampan/kubepods/podu1"
    assert (pod_dir / "cpu.max").read_text() == "50000 100000"
    assert (pod_dir / "cpu.weight").read_text() == "39"
    assert (pod_dir / "memory.max").read_text() == str(1 << 20)
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+pids"  # last write of the delegation
    assert (tmp_path / "sampan/kubepods/cgroup.subtree_control").exists()
    (pod_dir / "cpu.stat").write_text("usage_usec 7\nuser_usec 5\n")
    (pod_dir / "memory.current").write_text("5000\n")
    (pod_dir / "memory.stat").write_text("anon 100\ninactive_file 1000\n")
    (pod_dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    stats = cg.stats("sampan/kubepods/podu1")
    assert (stats.cpu_usage_ns, stats.memory_working_set_bytes) == (7000, 4000)
    assert cg.was_oom_killed("sampan/kubepods/podu1") is True

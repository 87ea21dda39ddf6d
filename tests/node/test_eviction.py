"""Node-pressure eviction: threshold parsing, the state over time (grace periods, transition
period), pod ranking and messages (pure), and the eviction manager on a NodeAgent over the
fake runtime: image GC first, then one pod evicted with reason Evicted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sampan.client.interface import EVENTS, NODES, PODS
from sampan.client.local import LocalClient
from sampan.node import eviction as ev
from sampan.node.evictionmanager import disk_usage, observe
from tests.node.agent_harness import Harness, eventually
from tests.node.fakes import pod as fake_pod

Mi = 1024 * 1024


def obs(available: int, capacity: int = 1000 * Mi) -> ev.Observation:
    return ev.Observation(available, capacity)


# -- parsing -----------------------------------------------------------------------------------
def test_default_hard_thresholds() -> None:
    config = ev.EvictionConfig()
    by_signal = {t.signal: t for t in config.hard}
    assert set(by_signal) == {"memory.available", "nodefs.available", "imagefs.available", "nodefs.inodesFree"}
    assert by_signal["memory.available"].amount(0) == 100 * Mi
    assert by_signal["nodefs.available"].amount(1000) == 100
    assert by_signal["imagefs.available"].amount(1000) == 150
    assert by_signal["nodefs.inodesFree"].amount(1000) == 50
    assert config.soft == [] and config.pressure_transition_period == 300 and config.monitoring_interval == 10


def test_parse_flags() -> None:
    config = ev.EvictionConfig.from_flags(
        "memory.available<1Gi, nodefs.available<5%", "memory.available<2Gi,pid.available<10%",
        "memory.available=1m30s,pid.available=30s", "30s", "2s", 60)
    assert [(t.signal, t.soft) for t in config.thresholds] == [
        ("memory.available", False), ("nodefs.available", False), ("memory.available", True), ("pid.available", True)]
    assert config.soft[0].grace_period == 90 and config.soft[1].grace_period == 30
    assert config.soft[0].amount(0) == 2048 * Mi
    assert config.pressure_transition_period == 30 and config.monitoring_interval == 2
    assert config.max_pod_grace_period == 60
    assert ev.EvictionConfig.from_flags("").hard == []  # an empty --eviction-hard: no hard thresholds


@pytest.mark.parametrize(("hard", "soft", "grace", "error"), [
    ("foo.available<1Gi", None, None, "unsupported eviction signal foo.available"),
    ("memory.available>1Gi", None, None, "expected SIGNAL<VALUE"),
    ("memory.available<lots", None, None, "invalid eviction threshold quantity"),
    ("nodefs.available<120%", None, None, "must be >= 0% and <= 100%"),
    ("nodefs.available<x%", None, None, "invalid eviction threshold percentage"),
    ("memory.available<1Gi,memory.available<2Gi", None, None, "duplicate eviction threshold"),
    ("memory.available<-1Gi", None, None, "must be positive"),
    (None, "memory.available<1Gi", None, "grace period must be specified"),
    (None, "memory.available<1Gi", "memory.available=1m,pid.available=1m", "without a soft threshold"),
    (None, "memory.available<1Gi", "memory.available=soon", "invalid duration"),
])
def test_parse_errors(hard: str | None, soft: str | None, grace: str | None, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ev.EvictionConfig.from_flags(hard, soft, grace)


def test_bad_durations_rejected() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        ev.EvictionConfig.from_flags(pressure_transition_period="5 minutes")
    with pytest.raises(ValueError, match="more than 0"):
        ev.EvictionConfig.from_flags(monitoring_interval="0s")
    assert ev.parse_duration("1h2m3.5s") == 3723.5 and ev.parse_duration("15") == 15


# -- decisions over time -----------------------------------------------------------------------
def test_hard_threshold_acts_at_once_and_condition_holds_for_transition_period() -> None:
    config = ev.EvictionConfig.from_flags("memory.available<100Mi,nodefs.available<10%",
                                          pressure_transition_period="5m")
    state = ev.EvictionState(config)
    fine = {"memory.available": obs(500 * Mi), "nodefs.available": obs(500 * Mi)}
    assert state.update(fine, 0).conditions == set()
    low = {"memory.available": obs(50 * Mi), "nodefs.available": obs(50 * Mi)}
    d = state.update(low, 10)
    assert d.conditions == {"MemoryPressure", "DiskPressure"}
    assert [t.signal for t in d.thresholds] == ["memory.available", "nodefs.available"]  # memory first
    d = state.update(fine, 20)
    assert d.thresholds == [] and d.conditions == {"MemoryPressure", "DiskPressure"}  # not flapping
    assert state.update(fine, 10 + 299).conditions == {"MemoryPressure", "DiskPressure"}
    assert state.update(fine, 10 + 300).conditions == set()


def test_soft_threshold_waits_for_its_grace_period() -> None:
    config = ev.EvictionConfig.from_flags("", "memory.available<1Gi", "memory.available=1m", "0s")
    state = ev.EvictionState(config)
    low = {"memory.available": obs(900 * Mi, 4096 * Mi)}
    d = state.update(low, 100)
    assert d.conditions == {"MemoryPressure"} and d.thresholds == [] and len(d.met) == 1
    assert state.update(low, 159).thresholds == []
    assert [t.soft for t in state.update(low, 160).thresholds] == [True]
    # Recovering resets the clock: the grace period starts over.
    assert state.update({"memory.available": obs(2048 * Mi, 4096 * Mi)}, 161).conditions == set()
    assert state.update(low, 170).thresholds == []


def test_missing_signal_is_never_met() -> None:
    state = ev.EvictionState(ev.EvictionConfig.from_flags("pid.available<10%", pressure_transition_period="0s"))
    assert state.update({}, 0).conditions == set()
    d = state.update({"pid.available": ev.Observation(100, 32768)}, 1)
    assert d.conditions == {"PIDPressure"} and d.thresholds[0].signal == "pid.available"


# -- ranking and messages ----------------------------------------------------------------------
def pod(name: str, memory_request: str | None = None, priority: int = 0, storage_request: str | None = None,
        **meta: Any) -> dict:
    requests = {k: v for k, v in (("memory", memory_request), ("ephemeral-storage", storage_request)) if v}
    return {"metadata": {"name": name, "uid": name, **meta},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": requests}}]}}


def test_rank_memory_usage_above_requests_then_priority_then_excess() -> None:
    within = ev.PodUsage(pod("within", "1Gi"), memory=900 * Mi)
    small_over = ev.PodUsage(pod("small-over"), memory=50 * Mi)
    big_over = ev.PodUsage(pod("big-over"), memory=300 * Mi)
    important = ev.PodUsage(pod("important", priority=1000), memory=2000 * Mi)
    burstable_over = ev.PodUsage(pod("burstable-over", "100Mi"), memory=250 * Mi)
    ranked = ev.rank("memory", [within, important, small_over, burstable_over, big_over])
    assert [u.pod["metadata"]["name"] for u in ranked] == [
        "big-over", "burstable-over", "small-over", "important", "within"]


def test_rank_disk_inodes_pids() -> None:
    a = ev.PodUsage(pod("a", storage_request="1Gi"), storage=10 * Mi, inodes=5, processes=3)
    b = ev.PodUsage(pod("b"), storage=20 * Mi, inodes=50, processes=1)
    c = ev.PodUsage(pod("c"), storage=40 * Mi, inodes=0, processes=9)
    assert [u.pod["metadata"]["name"] for u in ev.rank("ephemeral-storage", [a, b, c])] == ["c", "b", "a"]
    assert [u.pod["metadata"]["name"] for u in ev.rank("inodes", [a, b, c])] == ["b", "a", "c"]
    assert [u.pod["metadata"]["name"] for u in ev.rank("pids", [a, b, c])] == ["c", "a", "b"]


def test_eviction_message_like_upstream() -> None:
    threshold = ev.parse_thresholds("memory.available<100Mi")[0]
    p = pod("x")
    p["spec"]["containers"] = [{"name": "x", "resources": {}},
                               {"name": "y", "resources": {"requests": {"memory": "1Gi"}}}]
    usage = ev.PodUsage(p, memory=400 * Mi, container_memory={"x": 300 * Mi, "y": 100 * Mi})
    message = ev.eviction_message(threshold, obs(52 * Mi), usage)
    assert message == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi. "
                       "Container x was using 300Mi, request is 0, has larger consumption of memory.")
    pct = ev.parse_thresholds("nodefs.available<10%")[0]
    disk = ev.eviction_message(pct, obs(6 * Mi, 64 * Mi), ev.PodUsage(pod("d"), container_storage={"c": 0}))
    assert disk == "The node was low on resource: ephemeral-storage. Threshold quantity: 6710886, available: 6Mi."


def test_local_storage_limits_in_the_kubelet_order() -> None:
    p = pod("s")
    p["spec"]["containers"] = [{"name": "a", "resources": {"limits": {"ephemeral-storage": "10Mi"}}},
                               {"name": "b", "resources": {"limits": {"ephemeral-storage": "20Mi"}}}]
    p["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {"sizeLimit": "4Mi"}},
                            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                            {"name": "free", "emptyDir": {}}]
    assert ev.has_storage_limits(p) and set(ev.disk_empty_dirs_with_limits(p)) == {"scratch"}
    within = ev.PodUsage(p, storage=25 * Mi, container_storage={"a": 9 * Mi, "b": 5 * Mi})
    assert ev.storage_limit_violation(within, {"scratch": 4 * Mi}) is None
    assert ev.storage_limit_violation(within, {"scratch": 4 * Mi + 1}) == (
        'Usage of EmptyDir volume "scratch" exceeds the limit "4Mi".')
    whole = ev.PodUsage(p, storage=31 * Mi, container_storage={"a": 9 * Mi, "b": 5 * Mi})
    assert ev.storage_limit_violation(whole, {}) == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 30Mi.")
    one = ev.PodUsage(p, storage=12 * Mi, container_storage={"a": 11 * Mi, "b": 0})
    assert ev.storage_limit_violation(one, {}) == 'Container a exceeded its local ephemeral storage limit "10Mi".'
    # No limits anywhere (a memory-backed emptyDir's size is the tmpfs's own): nothing to watch.
    plain = pod("plain", storage_request="1Gi")
    plain["spec"]["volumes"] = [{"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
    assert not ev.has_storage_limits(plain)
    assert ev.storage_limit_violation(ev.PodUsage(plain, storage=10**12), {"ram": 10**12}) is None


def test_grace_period_critical_and_admission() -> None:
    hard = ev.parse_thresholds("memory.available<1Gi")[0]
    soft = ev.parse_thresholds("memory.available<1Gi", "memory.available=1m", soft=True)[0]
    p = pod("p")
    p["spec"]["terminationGracePeriodSeconds"] = 20
    assert ev.grace_period(hard, p, 60) == 0
    assert ev.grace_period(soft, p, 60) == 20 and ev.grace_period(soft, p, 5) == 5
    assert ev.is_critical(pod("sys", priority=2_000_001_000))
    assert ev.is_critical(pod("mirror", annotations={"kubernetes.io/config.mirror": "abc"}))
    assert not ev.is_critical(pod("plain", priority=1000))
    assert ev.admission_refusal(set(), pod("p"), "BestEffort") is None
    assert ev.admission_refusal({"MemoryPressure"}, pod("p"), "Burstable") is None
    assert ev.admission_refusal({"MemoryPressure"}, pod("p"), "BestEffort") == (
        "Evicted", "The node had condition: [MemoryPressure]. ")
    assert ev.admission_refusal({"DiskPressure"}, pod("p"), "Guaranteed") == (
        "Evicted", "The node had condition: [DiskPressure]. ")
    assert ev.admission_refusal({"DiskPressure"}, pod("sys", priority=2_000_000_000), "BestEffort") is None
    assert ev.admission_refusal({"PIDPressure", "MemoryPressure"}, pod("p"), "BestEffort") == (
        "Evicted", "The node had condition: [MemoryPressure PIDPressure]. ")
    tolerant = pod("t")
    tolerant["spec"]["tolerations"] = [{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
                                        "effect": "NoSchedule"}]
    assert ev.admission_refusal({"MemoryPressure"}, tolerant, "BestEffort") is None


def test_observe_and_disk_usage(tmp_path: Path) -> None:
    seen = observe(tmp_path, tmp_path / "missing")
    assert 0 < seen["nodefs.available"].available <= seen["nodefs.available"].capacity
    assert seen["imagefs.available"].capacity == seen["nodefs.available"].capacity
    assert 0 < seen["memory.available"].available < seen["memory.available"].capacity
    assert 0 < seen["pid.available"].available < seen["pid.available"].capacity
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 300_000)
    size, inodes = disk_usage(tmp_path / "d")
    assert size >= 300_000 and inodes == 1


# -- the manager on an agent -------------------------------------------------------------------
async def _conditions(client: LocalClient) -> dict[str, str]:
    node = await client.get(NODES, "node-a")
    return {c["type"]: c["status"] for c in node["status"]["conditions"]}


async def test_manager_reclaims_images_then_evicts_biggest_user(harness: Harness, client: LocalClient) -> None:
    config = ev.EvictionConfig(hard=[], monitoring_interval=3600, pressure_transition_period=0)
    agent = await harness.start(eviction=config)
    gc_calls: list[int] = []

    async def gc(target: int) -> int:
        gc_calls.append(target)
        return 0  # nothing unused to remove

    harness.images.gc = gc  # type: ignore[attr-defined]
    volume = [{"name": "scratch", "emptyDir": {}}]
    mount = [{"name": "scratch", "mountPath": "/scratch"}]
    for name, extra in (("small", {}), ("critical", {"priorityClassName": "system-node-critical"}), ("big", {})):
        containers = [{"name": "c", "image": "busybox:1.36", "volumeMounts": mount}]
        await client.create(PODS, fake_pod(name, containers=containers, volumes=volume, **extra), "default")

    async def all_running() -> dict[str, Any]:
        pods = {p["metadata"]["name"]: p for p in (await client.list(PODS, "default"))["items"]}
        assert all(p.get("status", {}).get("phase") == "Running" for p in pods.values()) and len(pods) == 3
        return pods

    pods = await eventually(all_running)
    scratch = agent.pods_dir / pods["big"]["metadata"]["uid"] / "volumes" / "empty-dir" / "scratch"
    (scratch / "fill").write_bytes(b"x" * 2 * Mi)
    critical = agent.pods_dir / pods["critical"]["metadata"]["uid"] / "volumes" / "empty-dir" / "scratch"
    (critical / "fill").write_bytes(b"x" * 4 * Mi)  # uses the most, but is never evicted

    # Every filesystem has less than 100% free: the threshold is met for real.
    agent.eviction.config.hard = ev.parse_thresholds("nodefs.available<100%")
    evicted = await agent.eviction.synchronize()
    assert evicted is not None and evicted["metadata"]["name"] == "big"
    assert gc_calls and gc_calls[0] > 0  # unused images went first

    big = await client.get(PODS, "big", "default")
    status = big["status"]
    assert status["phase"] == "Failed" and status["reason"] == "Evicted"
    assert status["message"].startswith("The node was low on resource: ephemeral-storage. Threshold quantity: ")
    target = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
    assert target["status"] == "True" and target["reason"] == "TerminationByKubelet"
    assert "terminated" in status["containerStatuses"][0]["state"]
    assert not scratch.exists()  # its emptyDir space went back
    assert (await client.get(PODS, "small", "default"))["status"]["phase"] == "Running"
    assert (await _conditions(client))["DiskPressure"] == "True"
    node = await client.get(NODES, "node-a")
    disk = next(c for c in node["status"]["conditions"] if c["type"] == "DiskPressure")
    assert disk["reason"] == "KubeletHasDiskPressure" and disk["message"] == "kubelet has disk pressure"

    async def events() -> set[tuple[str, str]]:
        items = (await client.list(EVENTS, "default"))["items"]
        found = {(e["reason"], e["involvedObject"]["name"]) for e in items}
        assert {("Evicted", "big"), ("EvictionThresholdMet", "node-a"), ("NodeHasDiskPressure", "node-a")} <= found
        return found

    await eventually(events)

    # A new pod is refused while the node is under disk pressure.
    await client.create(PODS, fake_pod("late"), "default")

    async def refused() -> dict:
        late = await client.get(PODS, "late", "default")
        assert late["status"]["phase"] == "Failed" and late["status"]["reason"] == "Evicted"
        return late

    late = await eventually(refused)
    assert late["status"]["message"] == "The node had condition: [DiskPressure]. "

    # At most one pod per round: the next round evicts the next one (never the critical pod).
    evicted = await agent.eviction.synchronize()
    assert evicted is not None and evicted["metadata"]["name"] == "small"
    assert await agent.eviction.synchronize() is None
    assert (await client.get(PODS, "critical", "default"))["status"]["phase"] == "Running"

    # Pressure gone (transition period 0): the condition clears at once.
    agent.eviction.config.hard = []
    await agent.eviction.synchronize()
    assert (await _conditions(client))["DiskPressure"] == "False"


async def test_pods_over_their_storage_limits_are_evicted_without_node_pressure(
        harness: Harness, client: LocalClient) -> None:
    config = ev.EvictionConfig(hard=[], monitoring_interval=3600, pressure_transition_period=0)
    agent = await harness.start(eviction=config)
    mount = [{"name": "scratch", "mountPath": "/scratch"}]
    limited = [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]
    for name, volumes, extra in (("capped", limited, {}), ("roomy", [{"name": "scratch", "emptyDir": {}}], {}),
                                 ("critical", limited, {"priorityClassName": "system-node-critical"})):
        containers = [{"name": "c", "image": "busybox:1.36", "volumeMounts": mount}]
        await client.create(PODS, fake_pod(name, containers=containers, volumes=volumes, **extra), "default")

    async def all_running() -> dict[str, Any]:
        pods = {p["metadata"]["name"]: p for p in (await client.list(PODS, "default"))["items"]}
        assert len(pods) == 3 and all(p.get("status", {}).get("phase") == "Running" for p in pods.values())
        return pods

    pods = await eventually(all_running)
    assert await agent.eviction.synchronize() is None  # nothing over its limit yet
    for name in pods:
        scratch = agent.pods_dir / pods[name]["metadata"]["uid"] / "volumes" / "empty-dir" / "scratch"
        (scratch / "fill").write_bytes(b"x" * 2 * Mi)
    evicted = await agent.eviction.synchronize()
    assert evicted is not None and evicted["metadata"]["name"] == "capped"
    status = (await client.get(PODS, "capped", "default"))["status"]
    assert status["phase"] == "Failed" and status["reason"] == "Evicted"
    assert status["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'
    # No sizeLimit, or a critical pod: both keep running; the node is under no pressure.
    for name in ("roomy", "critical"):
        assert (await client.get(PODS, name, "default"))["status"]["phase"] == "Running"
    assert await agent.eviction.synchronize() is None
    assert (await _conditions(client))["DiskPressure"] == "False"


async def test_memory_eviction_ranks_by_working_set(harness: Harness, client: LocalClient) -> None:
    from sampan.node.runtimes.base import ContainerStats

    config = ev.EvictionConfig(hard=[], monitoring_interval=3600, pressure_transition_period=0)
    agent = await harness.start(eviction=config)
    usage = {"hog": 300 * Mi, "quiet": 10 * Mi}

    async def stats(container_id: str) -> ContainerStats:
        name = harness.runtime.configs[container_id].labels.get("io.kubernetes.pod.name", "")
        return ContainerStats(memory_working_set_bytes=usage.get(name, 0))

    harness.runtime.stats = stats  # type: ignore[method-assign]
    for name in usage:
        await client.create(PODS, fake_pod(name), "default")

    async def both_running() -> bool:
        for name in usage:
            assert (await client.get(PODS, name, "default"))["status"]["phase"] == "Running"
        return True

    await eventually(both_running)
    agent.eviction.config.hard = ev.parse_thresholds("memory.available<100%")
    evicted = await agent.eviction.synchronize()
    assert evicted is not None and evicted["metadata"]["name"] == "hog"
    hog = await client.get(PODS, "hog", "default")
    assert "Container c was using 300Mi, request is 0, has larger consumption of memory." in hog["status"]["message"]
    assert (await _conditions(client))["MemoryPressure"] == "True"


def test_cli_rejects_bad_eviction_flags(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sampan.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["server", "--data-dir", str(tmp_path), "--eviction-hard", "memory.free<1Gi"])
    assert done.exit_code == 2 and "unsupported eviction signal memory.free" in done.output
    done = runner.invoke(main, ["agent", "--server", "https://127.0.0.1:1", "--token", "t", "--data-dir", str(tmp_path),
                                "--eviction-soft", "memory.available<1Gi"])
    assert done.exit_code == 2 and "grace period must be specified" in done.output
    assert not (tmp_path / "server").exists()  # refused before anything started


async def test_soft_eviction_uses_max_pod_grace_period(harness: Harness, client: LocalClient) -> None:
    config = ev.EvictionConfig(hard=[], monitoring_interval=3600, pressure_transition_period=0,
                               max_pod_grace_period=5)
    agent = await harness.start(eviction=config)
    graces: list[float] = []
    stop = harness.runtime.stop_container

    async def recording_stop(container_id: str, grace_seconds: float) -> None:
        graces.append(grace_seconds)
        await stop(container_id, grace_seconds)

    harness.runtime.stop_container = recording_stop  # type: ignore[method-assign]
    await client.create(PODS, fake_pod("soft", terminationGracePeriodSeconds=7), "default")

    async def running() -> bool:
        return (await client.get(PODS, "soft", "default")).get("status", {}).get("phase") == "Running"

    await eventually(running)
    agent.eviction.config.soft = ev.parse_thresholds("nodefs.available<100%", "nodefs.available=0s", soft=True)
    evicted = await agent.eviction.synchronize()
    assert evicted is not None and evicted["metadata"]["name"] == "soft"
    assert graces == [5]  # min(--eviction-max-pod-grace-period, the pod's 7 s)
    status = (await client.get(PODS, "soft", "default"))["status"]
    assert status["phase"] == "Failed" and status["reason"] == "Evicted"


def test_allocatable_keeps_hard_thresholds_aside() -> None:
    capacity = {"cpu": "2", "memory": "4194304Ki", "ephemeral-storage": "10485760Ki", "pods": "110"}
    out = ev.allocatable(capacity, ev.EvictionConfig().hard)
    assert out == {"cpu": "2", "memory": f"{4194304 - 102400}Ki", "ephemeral-storage": f"{10485760 - 1048576}Ki",
                   "pods": "110"}
    assert ev.allocatable(capacity, []) == capacity

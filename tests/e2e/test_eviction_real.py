"""Node-pressure eviction with real pods: the server and its in-process agent keep their data
on a small tmpfs, a pod fills an emptyDir until nodefs.available falls under the hard
threshold, and the agent evicts that pod (and only it), the node gets DiskPressure and the
disk-pressure taint, which go away once the space is back and the transition period passed.
Needs root, runc, the CNI plugins and busybox-static; skipped otherwise."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_pods_real import (NODE, Real, _kill_leftovers, box, eventually, pod, server_args,
                                      start_process, stop_process)
from tests.e2e.test_pods_real import pytestmark as real_marks

pytestmark = real_marks
Mi = 1024 * 1024
THRESHOLD_MI = 20


def _mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    """A cluster whose data dir is a 64 MiB tmpfs, evicting when less than 20 MiB is free."""
    from tests.node.images_util import busybox_image, write_docker_archive

    data = tmp_path_factory.mktemp("evict")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(data)], check=True)
    proc = None
    try:
        drop = data / "agent" / "images"
        drop.mkdir(parents=True)
        write_docker_archive(drop / "busybox.tar", busybox_image(cmd=["sh"]), ["busybox:e2e"])
        args = [a if a != "sqlite" else "memory" for a in server_args(data)]  # nothing else grows on the tmpfs
        args += ["--eviction-hard", f"nodefs.available<{THRESHOLD_MI}Mi", "--eviction-monitoring-interval", "1s",
                 "--eviction-pressure-transition-period", "15s"]
        proc, output = start_process(args, timeout=120)
        cluster = Real(data, proc, output)
        cluster.cache = tmp_path_factory.mktemp("kubectl-cache")  # not on the small filesystem
        eventually(lambda: "Ready" in cluster.kubectl("get", "node", NODE).stdout, 60)
        yield cluster
        if proc.poll() is None:
            cluster.delete_all()
    finally:
        if proc is not None:
            stop_process(proc)
        _kill_leftovers(data)
        if _mounted(data):
            subprocess.run(["umount", "-l", str(data)], check=False)


def node_state(cluster: Real) -> tuple[dict[str, str], list[dict]]:
    node = json.loads(cluster.kubectl("get", "node", NODE, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    return conditions, node["spec"].get("taints") or []


def test_disk_pressure_evicts_the_pod_filling_the_disk(small: Real) -> None:
    conditions, taints = node_state(small)
    assert conditions["DiskPressure"] == "False"
    assert not any(t["key"] == "node.kubernetes.io/disk-pressure" for t in taints)

    small.apply(pod("quiet", [box("c", "exec sleep 100000")]))
    small.running_ready("quiet")
    free = os.statvfs(small.data_dir)
    # Fill to 8 MiB under the threshold: real pressure, and still room for the agent to work.
    fill = (free.f_bavail * free.f_frsize) // Mi - THRESHOLD_MI + 8
    filler = pod("filler", [box("c", f"dd if=/dev/zero of=/data/fill bs=1M count={fill} && exec sleep 100000",
                                volumeMounts=[{"name": "data", "mountPath": "/data"}])],
                 volumes=[{"name": "data", "emptyDir": {}}])
    small.apply(filler)

    def evicted() -> dict | None:
        p = small.get("filler")
        return p if p["status"].get("reason") == "Evicted" else None

    p = eventually(evicted, 120)
    status = p["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith(
        f"The node was low on resource: ephemeral-storage. Threshold quantity: {THRESHOLD_MI}Mi, available: ")
    target = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
    assert target["status"] == "True" and target["reason"] == "TerminationByKubelet"
    assert "terminated" in status["containerStatuses"][0]["state"]

    def pressure_and_taint() -> bool:
        conds, taints = node_state(small)
        tainted = {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"} in [
            {"key": t["key"], "effect": t["effect"]} for t in taints]
        return conds["DiskPressure"] == "True" and tainted

    eventually(pressure_and_taint, 30)
    events = small.kubectl("get", "events", "--field-selector", "involvedObject.name=filler", "-o", "json").stdout
    evicted_events = [e for e in json.loads(events)["items"] if e["reason"] == "Evicted"]
    assert evicted_events and evicted_events[0]["type"] == "Warning"
    assert evicted_events[0]["message"] == status["message"]
    node_events = json.loads(small.kubectl("get", "events", "--field-selector", f"involvedObject.name={NODE}",
                                           "-o", "json").stdout)["items"]
    assert {"EvictionThresholdMet", "NodeHasDiskPressure"} <= {e["reason"] for e in node_events}

    # Only the pod that used the space went; the space came back with its emptyDir.
    assert small.get("quiet")["status"]["phase"] == "Running"
    free = os.statvfs(small.data_dir)
    assert free.f_bavail * free.f_frsize > THRESHOLD_MI * Mi

    def cleared() -> bool:
        conds, taints = node_state(small)
        return conds["DiskPressure"] == "False" and not any(
            t["key"] == "node.kubernetes.io/disk-pressure" for t in taints)

    eventually(cleared, 90)
    assert small.get("quiet")["status"]["phase"] == "Running"


def test_pods_over_their_own_storage_limits_are_evicted(small: Real) -> None:
    """No node pressure: an emptyDir past its sizeLimit, a pod past its containers' total
    ephemeral-storage limit and a container past its own get their pods evicted; a pod within
    its limits stays."""
    fill = "dd if=/dev/zero of={} bs=1M count=4 && exec sleep 100000"
    scratch = [{"name": "scratch", "mountPath": "/scratch"}]
    small.apply(pod("sized", [box("c", fill.format("/scratch/fill"), volumeMounts=scratch)],
                    volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "2Mi"}}]))
    small.apply(pod("whole", [box("c", fill.format("/fill"), resources={"limits": {"ephemeral-storage": "2Mi"}})]))
    # Within the pod's total (18Mi), over its own limit: the container's limit is what evicts.
    small.apply(pod("layer", [box("c", fill.format("/fill"), resources={"limits": {"ephemeral-storage": "2Mi"}}),
                              box("d", "exec sleep 100000", resources={"limits": {"ephemeral-storage": "16Mi"}})]))
    small.apply(pod("within", [box("c", fill.format("/fill"), resources={"limits": {"ephemeral-storage": "16Mi"}})]))

    def evicted(name: str) -> dict | None:
        p = small.get(name)
        return p["status"] if p["status"].get("reason") == "Evicted" else None

    sized = eventually(lambda: evicted("sized"), 60)
    assert sized["phase"] == "Failed"
    assert sized["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "2Mi".'
    whole = eventually(lambda: evicted("whole"), 60)
    assert whole["message"] == "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi."
    layer = eventually(lambda: evicted("layer"), 60)
    assert layer["message"] == 'Container c exceeded its local ephemeral storage limit "2Mi".'
    assert "terminated" in layer["containerStatuses"][0]["state"]
    small.running_ready("within")
    assert small.get("within")["status"]["phase"] == "Running"
    conditions, _ = node_state(small)
    assert conditions["DiskPressure"] == "False"
    for name in ("sized", "whole", "layer", "within"):
        small.kubectl("delete", "pod", name, "--wait=false")

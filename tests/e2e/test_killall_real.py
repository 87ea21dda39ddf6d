"""``sampan killall`` after a node died: its pods' containers kept running (as designed); killall
refuses while sampan still runs, then removes every container, PID holder, network namespace,
mount, nftables table and the bridge the node left, and the pods' data stays.
Needs root, runc, the CNI plugins and busybox-static; skipped otherwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_pods_real import (IMAGE, NODE, Real, _kill_leftovers, box, eventually, pod, server_args,
                                      start_process, stop_process)
from tests.e2e.test_pods_real import pytestmark as real_marks

pytestmark = real_marks


def killall(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sampan", "killall", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120)


def leftovers(data: Path) -> dict[str, list[str]]:
    needle = str(data).encode()
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                    procs.append(entry)
            except OSError:
                continue
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(data))]
    netns = [n for n in os.listdir("/run/netns") if n.startswith("sampan-")] if os.path.isdir("/run/netns") else []
    tables = [line for line in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
              .splitlines() if " sampan-" in line]
    bridge = subprocess.run(["ip", "link", "show", "sampan0"], capture_output=True).returncode == 0
    return {"processes": procs, "mounts": mounts, "netns": netns, "tables": tables,
            "bridge": ["sampan0"] if bridge else []}


def test_killall_cleans_up_a_dead_node(tmp_path: Path) -> None:
    from tests.node.images_util import busybox_image, write_docker_archive

    data = tmp_path / "node"
    drop = data / "agent" / "images"
    drop.mkdir(parents=True)
    write_docker_archive(drop / "busybox.tar", busybox_image(cmd=["sh"]), [IMAGE])
    proc, output = start_process(server_args(data), timeout=120)
    try:
        cluster = Real(data, proc, output)
        eventually(lambda: "Ready" in cluster.kubectl("get", "node", NODE).stdout, 60)
        cluster.apply(pod("web", [box("c", "echo kept > /data/file; exec sleep 100000",
                                      volumeMounts=[{"name": "data", "mountPath": "/data"}]),
                                  box("side", "exec sleep 100000")],
                          shareProcessNamespace=True,
                          volumes=[{"name": "data", "emptyDir": {}}, {"name": "ram", "emptyDir": {"medium": "Memory"}}]))
        cluster.running_ready("web")
        refused = killall(data)
        assert refused.returncode != 0 and "still running" in refused.stderr
        os.kill(proc.pid, signal.SIGKILL)  # the node dies; its containers do not
        proc.wait(10)
        before = leftovers(data)
        assert before["processes"] and before["mounts"] and before["netns"] and before["tables"] and before["bridge"]
        done = killall(data)
        assert done.returncode == 0, done.stderr
        assert "1 sandboxes" in done.stdout and "1 pod networks" in done.stdout
        assert leftovers(data) == {"processes": [], "mounts": [], "netns": [], "tables": [], "bridge": []}
        assert [p.read_text() for p in data.rglob("empty-dir/data/file")] == ["kept\n"]  # the pod's data stays
        again = killall(data)  # nothing left to do, and no error
        assert again.returncode == 0 and "0 containers" in again.stdout
    finally:
        stop_process(proc)
        _kill_leftovers(data)

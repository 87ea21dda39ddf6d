"""Real pods: a ``sampan server`` process with its in-process node agent on the oci runtime
(runc), the CNI bridge network and a busybox image imported from a tarball, driven by the
real kubectl. Needs root, runc, the CNI plugins and busybox-static; skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import KUBECTL, Cluster, start_process, stop_process
from tests.node import busybox

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc"),
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(), reason="needs the CNI plugins"),
    pytest.mark.skipif(not busybox.available(), reason="needs busybox-static"),
    pytest.mark.skipif(KUBECTL is None, reason="needs kubectl"),
    pytest.mark.timeout(600),
]

NODE = "e2e-real"
IMAGE = "busybox:e2e"


def server_args(data: Path) -> list[str]:
    return ["server", "--data-dir", str(data), "--datastore", "sqlite", "--port", "0", "--node-name", NODE,
            "--runtime", "oci", "--cluster-cidr", "198.18.0.0/16", "--service-cidr", "198.19.0.0/16",
            "--disable", "ingress", "--disable", "servicelb"]  # ports 80/443 stay free for other tests


def eventually(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, KeyError, IndexError, ValueError, StopIteration, subprocess.SubprocessError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {last}")


def _kill_leftovers(data: Path) -> None:
    """Whatever a failed test left: shims and containers of this data dir, pod netns, mounts."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(data).encode() in cmd and int(pid) != os.getpid():  # monitors, shims, helpers of this node
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    runc_root = "/run/sampan/runc"
    listed = subprocess.run(["runc", "--root", runc_root, "list", "-q"], capture_output=True, text=True)
    for cid in listed.stdout.split():
        if (data / "agent" / "runtime" / cid).exists():
            subprocess.run(["runc", "--root", runc_root, "delete", "--force", cid], capture_output=True)
    cni = data / "agent" / "cni"
    if cni.is_dir():
        for f in [*cni.glob("*.json"), *cni.glob("pods/*.json")]:  # what each pod was given, by pod UID
            subprocess.run(["ip", "netns", "delete", f"sampan-{f.stem[:12]}"], capture_output=True)
    attached = subprocess.run(["ip", "-o", "link", "show", "master", "sampan0"], capture_output=True, text=True)
    if attached.returncode == 0 and not attached.stdout.strip():
        subprocess.run(["ip", "link", "delete", "sampan0"], capture_output=True)  # the pods' bridge, now unused
        # No pod network left on this host: the node-wide masquerade table is a leftover too.
        subprocess.run(["nft", "delete", "table", "ip", "sampan-nat"], capture_output=True)
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    for line in reversed(mounts):
        target = line.split()[4]
        if target.startswith(str(data)):
            subprocess.run(["umount", "-l", target], capture_output=True)


class Real(Cluster):
    def get(self, name: str) -> dict:
        return json.loads(self.kubectl("get", "pod", name, "-o", "json").stdout)

    def apply(self, manifest: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def status_of(self, name: str, container: str | None = None) -> dict:
        statuses = self.get(name)["status"].get("containerStatuses") or []
        return next(s for s in statuses if container is None or s["name"] == container)

    def running_ready(self, name: str) -> dict:
        def check() -> dict | None:
            pod = self.get(name)
            conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
            return pod if pod["status"].get("phase") == "Running" and conds.get("Ready") == "True" else None

        return eventually(check, 90)  # type: ignore[no-any-return]

    def delete_all(self) -> None:
        self.kubectl("delete", "pods", "--all", "--grace-period=1", "--wait=true", check=False, timeout=120)


def pod(name: str, containers: list[dict], **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": containers, **spec}}


def box(name: str, script: str, **extra: Any) -> dict:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **extra}


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    yield from real_cluster(tmp_path_factory.mktemp("real"))


def real_cluster(data: Path, users: tuple[str, ...] = ()) -> Iterator[Real]:
    """A server with its in-process agent and the busybox image in its drop folder (and one
    tagged ``busybox:user-<USER>`` per image USER in ``users``); on the way out, every pod is
    deleted and anything left under ``data`` is stopped."""
    from tests.node.images_util import busybox_image, write_docker_archive

    drop = data / "agent" / "images"
    drop.mkdir(parents=True)
    write_docker_archive(drop / "busybox.tar", busybox_image(cmd=["sh"]), [IMAGE])
    for i, user in enumerate(users):
        write_docker_archive(drop / f"busybox-user-{i}.tar", busybox_image(cmd=["sh"], user=user),
                             [f"busybox:user-{user.replace(':', '-')}"])
    proc, output = start_process(server_args(data), timeout=120)
    cluster = Real(data, proc, output)
    try:
        eventually(lambda: "Ready" in cluster.kubectl("get", "node", NODE).stdout, 60)
        yield cluster
    finally:
        if cluster.proc.poll() is None:
            cluster.delete_all()
        stop_process(cluster.proc)
        _kill_leftovers(data)


def test_node_registered(real: Real) -> None:
    node = json.loads(real.kubectl("get", "node", NODE, "-o", "json").stdout)
    assert node["spec"]["podCIDR"].startswith("198.18.")
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("oci://")
    names = [n for img in node["status"]["images"] for n in img["names"]]
    assert "docker.io/library/busybox:e2e" in names


def test_httpd_reachable_and_localhost(real: Real) -> None:
    real.apply(pod("web", [
        box("httpd", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
            readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}),
        box("side", "until wget -qO- http://127.0.0.1:8080/; do sleep 1; done; exec sleep 100000"),
    ]))
    p = real.running_ready("web")
    ip = p["status"]["podIP"]
    assert ip.startswith("198.18.")
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
        assert resp.read() == b"hello-from-pod\n"
    assert "hello-from-pod" in eventually(lambda: real.kubectl("logs", "web", "-c", "side").stdout)
    cs = real.status_of("web", "httpd")
    assert cs["containerID"].startswith("oci://") and cs["restartCount"] == 0 and cs["started"] is True


def test_exec_cp_port_forward(real: Real) -> None:
    real.running_ready("web")
    assert real.kubectl("exec", "web", "-c", "side", "--", "sh", "-c", "echo out; hostname").stdout == "out\nweb\n"
    done = real.kubectl("exec", "web", "-c", "side", "--", "sh", "-c", "exit 3", check=False)
    assert done.returncode == 3
    real.kubectl("exec", "web", "-c", "side", "--", "/bin/busybox", "ln", "-sf", "/bin/busybox", "/bin/tar")
    src = real.data_dir / "cp-in.txt"
    src.write_text("copied in\n")
    real.kubectl("cp", str(src), "web:/tmp/cp.txt", "-c", "side")
    assert real.kubectl("exec", "web", "-c", "side", "--", "cat", "/tmp/cp.txt").stdout == "copied in\n"
    back = real.data_dir / "cp-out.txt"
    real.kubectl("cp", "web:/tmp/cp.txt", str(back), "-c", "side")
    assert back.read_text() == "copied in\n"
    port = 18000 + os.getpid() % 1000
    cmd = [str(KUBECTL), "--kubeconfig", str(real.kubeconfig), "port-forward", "pod/web", f"{port}:8080"]
    forward = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def fetch() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                return resp.read()

        assert eventually(lambda: _try(fetch), 20) == b"hello-from-pod\n"
    finally:
        forward.terminate()
        forward.wait(10)


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except OSError:
        return None


def test_crash_loop_backs_off(real: Real) -> None:
    real.apply(pod("crash", [box("c", "echo dying; exit 2")]))

    def backing_off() -> dict | None:
        cs = real.status_of("crash")
        return cs if cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" else None

    cs = eventually(backing_off, 60)
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert "back-off" in cs["state"]["waiting"]["message"]
    assert "dying" in real.kubectl("logs", "crash", "--previous").stdout
    real.kubectl("delete", "pod", "crash", "--grace-period=1")


def test_liveness_restarts(real: Real) -> None:
    real.apply(pod("live", [box("c", "touch /tmp/alive; exec sleep 100000", livenessProbe={
        "exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2})]))
    real.running_ready("live")
    real.kubectl("exec", "live", "--", "/bin/busybox", "rm", "/tmp/alive")
    eventually(lambda: real.status_of("live")["restartCount"] >= 1, 60)
    events = real.kubectl("get", "events", "--field-selector", "involvedObject.name=live").stdout
    assert "failed liveness probe, will be restarted" in events
    real.kubectl("delete", "pod", "live", "--grace-period=1")


def test_readiness_gates_ready(real: Real) -> None:
    real.apply(pod("gate", [box("c", "exec sleep 100000", readinessProbe={
        "exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1})]))
    eventually(lambda: real.status_of("gate")["state"].get("running"), 60)
    pod_ = real.get("gate")
    assert {c["type"]: c["status"] for c in pod_["status"]["conditions"]}["Ready"] == "False"
    real.kubectl("exec", "gate", "--", "touch", "/tmp/ready")
    real.running_ready("gate")
    real.kubectl("delete", "pod", "gate", "--grace-period=1")


def test_oom_killed_reported(real: Real) -> None:
    real.apply(pod("oom", [box("c", "dd if=/dev/zero of=/dev/null bs=256M count=1",
                               resources={"limits": {"memory": "32Mi"}})], restartPolicy="Never"))

    def terminated() -> dict | None:
        return real.status_of("oom")["state"].get("terminated")

    term = eventually(terminated, 60)
    assert term["reason"] == "OOMKilled"
    assert term["exitCode"] == 137
    assert real.get("oom")["status"]["phase"] == "Failed"
    real.kubectl("delete", "pod", "oom", "--grace-period=1")


def test_volumes(real: Real) -> None:
    real.kubectl("create", "configmap", "cfg", "--from-literal=greeting=hello")
    real.kubectl("create", "secret", "generic", "sec", "--from-literal=password=s3cret")
    real.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    ]
    mounts = [{"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"},
              {"name": "info", "mountPath": "/info"}, {"name": "data", "mountPath": "/data"}]
    manifest = pod("vols", [box("c", "cat /cfg/greeting /sec/password /info/labels; echo; "
                                     "cat /data/kept 2>/dev/null; echo persisted > /data/kept; exec sleep 100000",
                                volumeMounts=mounts)], volumes=volumes)
    manifest["metadata"]["labels"] = {"app": "vols"}
    real.apply(manifest)
    real.running_ready("vols")
    out = eventually(lambda: real.kubectl("logs", "vols").stdout, 30)
    assert "hello" in out and "s3cret" in out and 'app="vols"' in out
    assert "persisted" not in out
    pvc = json.loads(real.kubectl("get", "pvc", "data", "-o", "json").stdout)
    assert pvc["status"]["phase"] == "Bound"
    # A ConfigMap update reaches the running pod (the kubelet-style ..data swap).
    real.kubectl("patch", "configmap", "cfg", "-p", '{"data":{"greeting":"updated"}}')
    eventually(lambda: real.kubectl("exec", "vols", "--", "cat", "/cfg/greeting").stdout == "updated", 60)
    # The volume's data outlives the pod.
    real.kubectl("delete", "pod", "vols", "--grace-period=1")
    real.apply(manifest)
    real.running_ready("vols")
    assert "persisted" in eventually(lambda: real.kubectl("logs", "vols").stdout, 30)
    real.kubectl("delete", "pod", "vols", "--grace-period=1")


def test_server_kill9_keeps_containers(real: Real) -> None:
    before = real.running_ready("web")
    ids = {c["name"]: c["containerID"] for c in before["status"]["containerStatuses"]}
    ip = before["status"]["podIP"]
    real.proc.send_signal(signal.SIGKILL)
    real.proc.wait(10)
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:  # the pod runs on without the server
        assert resp.read() == b"hello-from-pod\n"
    proc, output = start_process(server_args(real.data_dir), timeout=120)
    real.proc, real.output = proc, output
    time.sleep(5)  # a few rounds of the new agent
    after = real.running_ready("web")
    assert {c["name"]: c["containerID"] for c in after["status"]["containerStatuses"]} == ids
    assert all(c["restartCount"] == 0 for c in after["status"]["containerStatuses"])


def test_host_network_pod(real: Real) -> None:
    real.apply(pod("hostnet", [box("c", "exec sleep 100000")], hostNetwork=True))
    p = real.running_ready("hostnet")
    assert p["status"]["podIP"] == p["status"]["hostIP"]
    hosts = real.kubectl("exec", "hostnet", "--", "cat", "/etc/hosts").stdout
    assert hosts == Path("/etc/hosts").read_text()
    real.kubectl("delete", "pod", "hostnet", "--grace-period=1")


def test_host_pid_and_ipc_pods(real: Real) -> None:
    """hostPID/hostIPC pods (node agents, monitoring) use the node's namespaces; others their own."""
    show = "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; exec sleep 100000"
    real.apply(pod("hostns", [box("c", show)], hostPID=True, hostIPC=True))
    real.apply(pod("ownns", [box("c", show)]))
    real.running_ready("hostns")
    real.running_ready("ownns")
    node = [os.readlink(f"/proc/self/ns/{kind}") for kind in ("pid", "ipc")]
    assert real.kubectl("logs", "hostns").stdout.split() == node
    own = real.kubectl("logs", "ownns").stdout.split()
    assert len(own) == 2 and own[0] != node[0] and own[1] != node[1]
    # The node's processes are visible in the hostPID pod only.
    assert str(real.proc.pid) in real.kubectl("exec", "hostns", "--", "ls", "/proc").stdout.split()
    assert str(real.proc.pid) not in real.kubectl("exec", "ownns", "--", "ls", "/proc").stdout.split()
    real.kubectl("delete", "pod", "hostns", "ownns", "--grace-period=1")


def test_shared_process_namespace(real: Real) -> None:
    """shareProcessNamespace: one PID namespace for the pod, held by a pause process (PID 1), so a
    sidecar sees and can signal the app; restarting the app keeps the namespace."""
    real.apply(pod("shared", [box("app", "exec sleep 4343"), box("side", "exec sleep 100000")],
                   shareProcessNamespace=True))
    real.running_ready("shared")
    procs = real.kubectl("exec", "shared", "-c", "side", "--", "ps", "-o", "pid,args").stdout
    assert "sleep 4343" in procs and "sleep 100000" in procs
    first = next(line.split(None, 1)[1] for line in procs.splitlines()[1:] if line.split()[0] == "1")
    assert "catatonit" in first
    app = next(line.split()[0] for line in procs.splitlines() if line.endswith("sleep 4343"))
    real.kubectl("exec", "shared", "-c", "side", "--", "kill", app)  # the sidecar signals the app

    def restarted() -> dict | None:
        status = real.status_of("shared", "app")
        return status if status["restartCount"] >= 1 and "running" in status["state"] else None

    eventually(restarted, 60)
    assert "sleep 4343" in real.kubectl("exec", "shared", "-c", "side", "--", "ps", "-o", "args").stdout
    sandbox = next((real.data_dir / "agent").rglob("pid-holder"), None)
    assert sandbox is not None
    holder = int(sandbox.read_text())
    real.kubectl("delete", "pod", "shared", "--grace-period=1")
    eventually(lambda: not Path(f"/proc/{holder}").exists(), 30)  # the holder went with the pod

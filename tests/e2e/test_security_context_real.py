"""Security contexts with real runc: the image's USER (a name from its /etc/passwd, or numbers),
runAsUser/runAsGroup over it, supplementalGroups, runAsNonRoot refusing what would run as root,
pod sysctls (safe ones set in the pod's namespaces, unsafe ones refused by the node) and
seccomp profiles (RuntimeDefault, Localhost).
Needs root, runc, the CNI plugins and busybox-static; skipped otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_pods_real import IMAGE, Real, eventually, pod, real_cluster
from tests.e2e.test_pods_real import pytestmark as real_marks

pytestmark = real_marks
SHOW = "id -u; id -g; id -G; exec sleep 100000"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    yield from real_cluster(tmp_path_factory.mktemp("users"), users=("nobody", "4242:4343"))


def ids_of(cluster: Real, name: str, **spec: object) -> list[str]:
    image = spec.pop("image", IMAGE)
    sc = spec.pop("container_security", None)
    container = {"name": "c", "image": image, "command": ["sh", "-c", SHOW]}
    if sc:
        container["securityContext"] = sc
    cluster.apply(pod(name, [container], **spec))
    cluster.running_ready(name)
    return cluster.kubectl("logs", name).stdout.split("\n")[:3]


def test_image_user_is_used(real: Real) -> None:
    assert ids_of(real, "root-default") == ["0", "0", "0"]
    assert ids_of(real, "by-name", image="busybox:user-nobody") == ["65534", "65534", "65534"]
    assert ids_of(real, "by-number", image="busybox:user-4242-4343") == ["4242", "4343", "4343"]


def test_security_context_overrides_the_image(real: Real) -> None:
    pod_sc = {"runAsUser": 1000, "runAsGroup": 2000, "supplementalGroups": [3000], "runAsNonRoot": True}
    assert ids_of(real, "overridden", image="busybox:user-nobody", securityContext=pod_sc) == [
        "1000", "2000", "2000 3000"]
    assert ids_of(real, "container-wins", securityContext=pod_sc, container_security={"runAsUser": 1234}) == [
        "1234", "2000", "2000 3000"]
    assert ids_of(real, "numeric-non-root", image="busybox:user-4242-4343",
                  securityContext={"runAsNonRoot": True}) == ["4242", "4343", "4343"]


def test_run_as_non_root_refuses_root_and_names(real: Real) -> None:
    for name, image in (("would-be-root", IMAGE), ("named-user", "busybox:user-nobody")):
        real.apply(pod(name, [{"name": "c", "image": image, "command": ["sleep", "100000"]}],
                       securityContext={"runAsNonRoot": True}))

    def waiting(name: str) -> dict | None:
        statuses = real.get(name)["status"].get("containerStatuses") or [{}]
        w = statuses[0].get("state", {}).get("waiting") or {}
        return w if w.get("reason") == "CreateContainerConfigError" else None

    root = eventually(lambda: waiting("would-be-root"), 60)
    uid = real.get("would-be-root")["metadata"]["uid"]
    assert root["message"] == (f'container has runAsNonRoot and image will run as root '
                               f'(pod: "would-be-root_default({uid})", container: c)')
    named = eventually(lambda: waiting("named-user"), 60)
    assert "image has non-numeric user (nobody), cannot verify user is non-root" in named["message"]
    assert real.get("would-be-root")["status"]["phase"] == "Pending"


def test_safe_sysctls_are_set_and_unsafe_ones_refused(real: Real) -> None:
    show = "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced; exec sleep 100000"
    sysctls = [{"name": "net.ipv4.ip_local_port_range", "value": "20000 30000"},
               {"name": "kernel/shm_rmid_forced", "value": "1"}]  # the slash form works too
    real.apply(pod("tuned", [{"name": "c", "image": IMAGE, "command": ["sh", "-c", show]}],
                   securityContext={"sysctls": sysctls}))
    real.running_ready("tuned")
    assert real.kubectl("logs", "tuned").stdout.split() == ["20000", "30000", "1"]
    # Only the pod's own namespaces changed.
    assert Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split() != ["20000", "30000"]
    real.apply(pod("unsafe", [{"name": "c", "image": IMAGE, "command": ["sleep", "100000"]}],
                   securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}))

    def failed() -> dict | None:
        status = real.get("unsafe")["status"]
        return status if status.get("phase") == "Failed" else None

    status = eventually(failed, 60)
    assert status["reason"] == "SysctlForbidden"
    assert status["message"] == 'forbidden sysctl: "net.core.somaxconn" not allowlisted'


def test_seccomp_profiles(real: Real) -> None:
    # Creating a user namespace needs no capability: only a seccomp filter stops it.
    script = ("grep Seccomp: /proc/self/status; "
              "busybox unshare -U true 2>/dev/null && echo userns-ok || echo userns-refused; exec sleep 100000")
    profiles = real.data_dir / "agent" / "seccomp"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "no-unshare.json").write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}]}')
    for name, profile in (("unconfined", None), ("runtime-default", {"type": "RuntimeDefault"}),
                          ("localhost", {"type": "Localhost", "localhostProfile": "no-unshare.json"})):
        extra = {"securityContext": {"seccompProfile": profile}} if profile else {}
        real.apply(pod(name, [{"name": "c", "image": IMAGE, "command": ["sh", "-c", script]}], **extra))
    for name in ("unconfined", "runtime-default", "localhost"):
        real.running_ready(name)
    assert real.kubectl("logs", "unconfined").stdout.split() == ["Seccomp:", "0", "userns-ok"]
    assert real.kubectl("logs", "runtime-default").stdout.split() == ["Seccomp:", "2", "userns-refused"]
    assert real.kubectl("logs", "localhost").stdout.split() == ["Seccomp:", "2", "userns-refused"]
    # A missing Localhost profile: the container is not created, with the reason.
    real.apply(pod("no-profile", [{"name": "c", "image": IMAGE, "command": ["sleep", "100000"]}],
                   securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "nope.json"}}))

    def waiting() -> dict | None:
        statuses = real.get("no-profile")["status"].get("containerStatuses") or [{}]
        w = statuses[0].get("state", {}).get("waiting") or {}
        return w if w.get("reason") == "CreateContainerError" else None

    assert "cannot load seccomp profile" in eventually(waiting, 60)["message"]

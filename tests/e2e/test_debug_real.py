"""``kubectl debug`` against real pods: an ephemeral container joins a running pod, sees the
target container's processes (its PID namespace), shares the pod's network, takes stdin
through attach, and is never restarted; the pod's own containers are untouched.
Needs root, runc, the CNI plugins and busybox-static; skipped otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.test_pods_real import IMAGE, Real, box, eventually, pod, real_cluster
from tests.e2e.test_pods_real import pytestmark as real_marks

pytestmark = real_marks


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    yield from real_cluster(tmp_path_factory.mktemp("debug"))


def ephemeral_status(cluster: Real, pod_name: str, container: str) -> dict | None:
    statuses = cluster.get(pod_name)["status"].get("ephemeralContainerStatuses") or []
    return next((s for s in statuses if s["name"] == container), None)


def test_debug_container_sees_the_target_and_the_pod_network(real: Real) -> None:
    real.apply(pod("target", [box("app", "exec sleep 4242"),
                              box("web", "mkdir -p /www && echo from-web > /www/index.html && "
                                         "exec httpd -f -p 8080 -h /www")]))
    real.running_ready("target")
    script = "ps; wget -qO- http://127.0.0.1:8080/; echo done"
    real.kubectl("debug", "target", f"--image={IMAGE}", "-c", "probe", "--target=app", "--profile=general",
                 "--", "sh", "-c", script)

    def finished() -> dict | None:
        status = ephemeral_status(real, "target", "probe")
        return status if status and "terminated" in status["state"] else None

    status = eventually(finished, 60)
    assert status["state"]["terminated"]["exitCode"] == 0 and status["restartCount"] == 0
    logs = real.kubectl("logs", "target", "-c", "probe").stdout
    assert "sleep 4242" in logs  # the target container's process, seen through its PID namespace
    assert "httpd" not in logs  # only the target's namespace, not every container's
    assert "from-web" in logs and logs.rstrip().endswith("done")  # localhost is the pod's
    p = real.get("target")
    assert p["status"]["phase"] == "Running"
    assert all(c["restartCount"] == 0 and c["ready"] for c in p["status"]["containerStatuses"])
    # Exited is final: still one terminated status a while later, never a new container.
    eventually(lambda: real.get("target")["status"]["ephemeralContainerStatuses"][0]["state"].get("terminated"), 5)
    spec = json.loads(real.kubectl("get", "pod", "target", "-o", "json").stdout)["spec"]
    assert [c["name"] for c in spec["ephemeralContainers"]] == ["probe"]


def test_interactive_debug_session(real: Real) -> None:
    real.apply(pod("shell-target", [box("app", "exec sleep 100000")]))
    real.running_ready("shell-target")
    result = real.kubectl("debug", "shell-target", "-i", f"--image={IMAGE}", "-c", "shell", "--profile=general",
                          "--", "sh", input="echo interactive-$((6*7))\nexit 0\n", timeout=90)
    assert "interactive-42" in result.stdout
    status = eventually(lambda: (s := ephemeral_status(real, "shell-target", "shell")) and
                        "terminated" in s["state"] and s, 30)
    assert status["state"]["terminated"]["exitCode"] == 0
    assert real.get("shell-target")["status"]["containerStatuses"][0]["restartCount"] == 0

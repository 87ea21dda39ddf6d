"""``kubectl top node`` and ``kubectl top pod`` on a real node: the in-process agent samples
/proc and the pods' cgroups, the API server serves metrics.k8s.io from those samples. Needs
root, runc, the CNI plugins and busybox-static; skipped otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.test_pods_real import NODE, Real, box, eventually, pod, real_cluster
from tests.e2e.test_pods_real import pytestmark as real_marks

pytestmark = real_marks


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    yield from real_cluster(tmp_path_factory.mktemp("top"))


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()[1:]]


def test_top_node_and_pod(real: Real) -> None:
    groups = json.loads(real.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1").stdout)
    assert {r["name"] for r in groups["resources"]} == {"nodes", "pods"}

    def top_node() -> list[str] | None:
        done = real.kubectl("top", "node", check=False)
        rows = [r for r in _rows(done.stdout) if r and r[0] == NODE] if done.returncode == 0 else []
        return rows[0] if rows and rows[0][1] != "<unknown>" else None

    row = eventually(top_node, 60)
    assert row[1].endswith("m") and row[3].endswith("Mi")  # cpu in millicores, memory in MiB
    assert int(row[3][:-2]) > 0

    real.apply(pod("busy", [box("spin", "while true; do i=$((i+1)); done")]))
    real.running_ready("busy")

    def top_pod() -> list[str] | None:
        done = real.kubectl("top", "pod", "busy", "--containers", check=False)
        rows = _rows(done.stdout) if done.returncode == 0 else []
        return rows[0] if rows else None

    row = eventually(top_pod, 90)
    assert row[:2] == ["busy", "spin"]
    assert int(row[2].removesuffix("m")) > 100  # a busy loop uses a good share of a core
    assert row[3].endswith("Mi")
    raw = json.loads(real.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy").stdout)
    assert raw["kind"] == "PodMetrics" and raw["containers"][0]["name"] == "spin"
    real.kubectl("delete", "pod", "busy", "--grace-period=1", "--wait=true", timeout=120)
    gone = real.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr

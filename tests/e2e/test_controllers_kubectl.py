"""Namespace deletion, cascading deletion, Jobs and CronJobs driven by the real kubectl
against a real ``sampan server`` process. There is no node agent: the test plays the
kubelet by patching pod status."""

from __future__ import annotations

import json

import pytest

from tests.e2e.cluster import Cluster, cluster, get_json, needs_kubectl  # noqa: F401
from tests.e2e.cluster import wait_for as poll

pytestmark = needs_kubectl


def missing(c: Cluster, *args: str) -> bool:
    result = c.kubectl("get", *args, check=False)
    return result.returncode != 0 and "NotFound" in result.stderr


def make_family(c: Cluster, ns: str) -> None:
    c.kubectl("create", "configmap", "owner", "-n", ns)
    uid = c.kubectl("get", "configmap", "owner", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    for i in range(2):
        manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"dep-{i}",
                "namespace": ns,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": True}
                ],
            },
        }
        c.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def test_delete_namespace_completes(cluster: Cluster) -> None:  # noqa: F811
    cluster.kubectl("create", "namespace", "e2e-doomed")
    cluster.kubectl("create", "configmap", "cm", "-n", "e2e-doomed", "--from-literal=a=b")
    poll(lambda: not missing(cluster, "serviceaccount", "default", "-n", "e2e-doomed"))
    result = cluster.kubectl("delete", "namespace", "e2e-doomed", "--timeout=60s", timeout=90)
    assert 'namespace "e2e-doomed" deleted' in result.stdout
    assert poll(lambda: missing(cluster, "namespace", "e2e-doomed"))


@pytest.mark.parametrize("mode", ["background", "foreground", "orphan"])
def test_cascading_delete(cluster: Cluster, mode: str) -> None:  # noqa: F811
    ns = f"e2e-cascade-{mode}"
    cluster.kubectl("create", "namespace", ns)
    make_family(cluster, ns)
    cluster.kubectl("delete", "configmap", "owner", "-n", ns, f"--cascade={mode}", "--timeout=60s", timeout=90)
    assert poll(lambda: missing(cluster, "configmap", "owner", "-n", ns))
    if mode == "orphan":
        for i in range(2):
            dep = get_json(cluster, "configmap", f"dep-{i}", "-n", ns)
            assert "ownerReferences" not in dep["metadata"]
    else:
        assert poll(lambda: all(missing(cluster, "configmap", f"dep-{i}", "-n", ns) for i in range(2)))


def test_job_completes(cluster: Cluster) -> None:  # noqa: F811
    cluster.kubectl("create", "job", "e2e-job", "--image=busybox", "--", "true")

    def pod_name() -> str:
        return cluster.kubectl(
            "get", "pods", "-l", "batch.kubernetes.io/job-name=e2e-job", "-o", "jsonpath={.items[0].metadata.name}",
            check=False,
        ).stdout

    name = poll(pod_name)
    cluster.kubectl(
        "patch", "pod", name, "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Succeeded"}}'
    )
    cluster.kubectl("wait", "--for=condition=complete", "job/e2e-job", "--timeout=60s", timeout=90)
    job = get_json(cluster, "job", "e2e-job")
    assert job["status"]["succeeded"] == 1
    assert "completionTime" in job["status"]


def test_job_from_cronjob(cluster: Cluster) -> None:  # noqa: F811
    cluster.kubectl("create", "cronjob", "e2e-cron", "--image=busybox", "--schedule=*/5 * * * *", "--", "true")
    result = cluster.kubectl("create", "job", "e2e-manual", "--from=cronjob/e2e-cron")
    assert "job.batch/e2e-manual created" in result.stdout
    job = get_json(cluster, "job", "e2e-manual")
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "CronJob" and owner["name"] == "e2e-cron"
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    # The job controller runs it like any other job.
    poll(lambda: cluster.kubectl("get", "pods", "-l", "batch.kubernetes.io/job-name=e2e-manual", "-o", "name").stdout)
    # The cronjob controller tracks it as one of its active jobs.
    poll(lambda: any(r["name"] == "e2e-manual" for r in get_json(cluster, "cronjob", "e2e-cron").get("status", {}).get("active", [])))

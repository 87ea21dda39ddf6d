"""Rows for apps/v1 and batch/v1 kinds."""

from datetime import datetime, timezone

from sampan.api.tables import build_table

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}], "nodeSelector": {"disk": "ssd"}}}


def md(name: str, created: str = "2025-03-01T11:57:00Z", **extra: object) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": created, **extra}


def row(group: str, resource: str, obj: dict) -> list:
    return build_table(group, resource, [obj], now=NOW)["rows"][0]["cells"]


def columns(group: str, resource: str) -> list[tuple[str, str, int]]:
    return [(c["name"], c["type"], c["priority"]) for c in build_table(group, resource, [])["columnDefinitions"]]


def test_deployment() -> None:
    deploy = {"metadata": md("web"), "spec": {
        "replicas": 3, "template": TEMPLATE,
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                          {"key": "canary", "operator": "DoesNotExist"}]}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert row("apps", "deployments", deploy) == ["web", "2/3", 3, 2, "3m", "nginx", "nginx:1.27",
                                                  "app=web,!canary,tier in (be,fe)"]
    fresh = {"metadata": md("new"), "spec": {"replicas": 1, "template": TEMPLATE, "selector": {}}}
    assert row("apps", "deployments", fresh)[1:4] == ["0/1", 0, 0]
    assert columns("apps", "deployments") == [
        ("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "string", 0), ("Available", "string", 0),
        ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]


def test_replicaset_statefulset_daemonset() -> None:
    rs = {"metadata": md("web-7d4b9c"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                                 "template": TEMPLATE},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert row("apps", "replicasets", rs) == ["web-7d4b9c", 3, 3, 1, "3m", "nginx", "nginx:1.27", "app=web"]
    sts = {"metadata": md("db"), "spec": {"replicas": 2, "template": TEMPLATE}, "status": {"readyReplicas": 2}}
    assert row("apps", "statefulsets", sts) == ["db", "2/2", "3m", "nginx", "nginx:1.27"]
    ds = {"metadata": md("agent"), "spec": {"template": TEMPLATE, "selector": {"matchLabels": {"app": "agent"}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert row("apps", "daemonsets", ds) == ["agent", 3, 3, 2, 3, 2, "disk=ssd", "3m", "nginx", "nginx:1.27",
                                             "app=agent"]
    assert [c[0] for c in columns("apps", "daemonsets")] == [
        "Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age", "Containers",
        "Images", "Selector"]


def test_controller_revision() -> None:
    rev = {"metadata": md("db-5d8f", ownerReferences=[{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                        "name": "db", "controller": True, "uid": "u"}]),
           "revision": 2}
    assert row("apps", "controllerrevisions", rev) == ["db-5d8f", "statefulset.apps/db", 2, "3m"]
    assert row("apps", "controllerrevisions", {"metadata": md("x"), "revision": 1})[1] == "<none>"


def job(**status: object) -> dict:
    return {"metadata": md("pi"), "spec": {"completions": 1, "parallelism": 1, "template": TEMPLATE,
                                           "selector": {"matchLabels": {"batch.kubernetes.io/job-name": "pi"}}},
            "status": status}


def test_job_status_completions_duration() -> None:
    running = job(startTime="2025-03-01T11:57:00Z", active=1)
    assert row("batch", "jobs", running) == ["pi", "Running", "0/1", "3m", "3m", "nginx", "nginx:1.27",
                                             "batch.kubernetes.io/job-name=pi"]
    done = job(startTime="2025-03-01T11:57:00Z", completionTime="2025-03-01T11:57:42Z", succeeded=1,
               conditions=[{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}])
    assert row("batch", "jobs", done)[1:4] == ["Complete", "1/1", "42s"]
    failed = job(startTime="2025-03-01T11:57:00Z",
                 conditions=[{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}])
    assert row("batch", "jobs", failed)[1] == "Failed"
    target = job(conditions=[{"type": "FailureTarget", "status": "True"}])
    assert row("batch", "jobs", target)[1:4] == ["FailureTarget", "0/1", ""]
    suspended = job(conditions=[{"type": "Suspended", "status": "True"}])
    assert row("batch", "jobs", suspended)[1] == "Suspended"
    deleting = job()
    deleting["metadata"]["deletionTimestamp"] = "2025-03-01T11:59:00Z"
    assert row("batch", "jobs", deleting)[1] == "Terminating"
    parallel = job(succeeded=2)
    del parallel["spec"]["completions"]
    parallel["spec"]["parallelism"] = 3
    assert row("batch", "jobs", parallel)[2] == "2/1 of 3"
    assert [c[0] for c in columns("batch", "jobs")] == ["Name", "Status", "Completions", "Duration", "Age",
                                                        "Containers", "Images", "Selector"]


def test_cronjob() -> None:
    cj = {"metadata": md("backup"), "spec": {"schedule": "*/5 * * * *", "suspend": False,
                                             "jobTemplate": {"spec": {"template": TEMPLATE}}},
          "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": "2025-03-01T11:55:00Z"}}
    assert row("batch", "cronjobs", cj) == ["backup", "*/5 * * * *", "<none>", "False", 1, "5m", "3m", "nginx",
                                            "nginx:1.27", "<none>"]
    cj["spec"]["timeZone"] = "Etc/UTC"
    del cj["spec"]["suspend"]
    cj["status"] = {}
    assert row("batch", "cronjobs", cj)[2:6] == ["Etc/UTC", "<unset>", 0, "<none>"]
    assert columns("batch", "cronjobs")[1:6] == [("Schedule", "string", 0), ("Timezone", "string", 0),
                                                 ("Suspend", "boolean", 0), ("Active", "integer", 0),
                                                 ("Last Schedule", "string", 0)]

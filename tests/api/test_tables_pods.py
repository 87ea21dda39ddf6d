"""Pod rows: the STATUS/READY/RESTARTS logic kubectl users see most."""

from datetime import datetime, timezone
from typing import Any

import pytest

from sampan.api.tables import build_table

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
CREATED = "2025-03-01T11:00:00Z"  # one hour before NOW


def pod(containers: int = 1, *, phase: str = "Running", statuses: list | None = None, init: list | None = None,
        init_statuses: list | None = None, **extra: Any) -> dict:
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7d4b9c-x2x8k", "namespace": "default", "creationTimestamp": CREATED,
                     "uid": "u1", "resourceVersion": "42", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)],
                 "initContainers": init or []},
        "status": {"phase": phase, "containerStatuses": statuses or [], "initContainerStatuses": init_statuses or []},
    }
    for key, value in extra.items():
        section, _, field = key.partition("__")
        obj[section][field] = value
    return obj


def running(name: str = "c0", ready: bool = True, restarts: int = 0, **extra: Any) -> dict:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": CREATED}},
            **extra}


def waiting(reason: str, name: str = "c0", restarts: int = 0, **extra: Any) -> dict:
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(name: str = "c0", exit_code: int = 0, reason: str = "", signal: int = 0) -> dict:
    term: dict[str, Any] = {"exitCode": exit_code, "finishedAt": CREATED}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}}


def cells(obj: dict) -> list:
    return build_table("", "pods", [obj], now=NOW)["rows"][0]["cells"]


def test_columns_match_upstream() -> None:
    table = build_table("", "pods", [], now=NOW)
    cols = [(c["name"], c["type"], c["format"], c["priority"]) for c in table["columnDefinitions"]]
    assert cols == [
        ("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Status", "string", "", 0),
        ("Restarts", "string", "", 0), ("Age", "string", "", 0), ("IP", "string", "", 1),
        ("Node", "string", "", 1), ("Nominated Node", "string", "", 1), ("Readiness Gates", "string", "", 1),
    ]
    assert table["columnDefinitions"][0]["description"].startswith("Name must be unique")
    assert table["rows"] == []


def test_running_pod_full_row() -> None:
    obj = pod(statuses=[running()], spec__nodeName="node-1",
              status__podIP="10.244.0.5", status__podIPs=[{"ip": "10.244.0.5"}])
    assert cells(obj) == ["web-7d4b9c-x2x8k", "1/1", "Running", "0", "60m", "10.244.0.5", "node-1",
                          "<none>", "<none>"]


@pytest.mark.parametrize(("obj", "ready", "status"), [
    (pod(phase="Pending"), "0/1", "Pending"),
    (pod(phase="Pending", statuses=[waiting("ContainerCreating")]), "0/1", "ContainerCreating"),
    (pod(statuses=[waiting("ImagePullBackOff")]), "0/1", "ImagePullBackOff"),
    (pod(2, statuses=[running("c0"), running("c1", ready=False)]), "1/2", "Running"),
    (pod(phase="Succeeded", statuses=[terminated(reason="Completed")]), "0/1", "Completed"),
    (pod(phase="Failed", statuses=[terminated(exit_code=1, reason="Error")]), "0/1", "Error"),
    (pod(phase="Failed", statuses=[terminated(exit_code=137)]), "0/1", "ExitCode:137"),
    (pod(phase="Failed", statuses=[terminated(exit_code=0, signal=9)]), "0/1", "Signal:9"),
    (pod(phase="Failed", status__reason="Evicted"), "0/1", "Evicted"),
    (pod(phase="Pending", status__conditions=[{"type": "PodScheduled", "status": "False",
                                               "reason": "SchedulingGated"}]), "0/1", "SchedulingGated"),
])
def test_status_and_ready(obj: dict, ready: str, status: str) -> None:
    row = cells(obj)
    assert (row[1], row[2]) == (ready, status)


INITS = [{"name": "init-a", "image": "busybox"}, {"name": "init-b", "image": "busybox"}]


@pytest.mark.parametrize(("init_statuses", "statuses", "status"), [
    ([waiting("PodInitializing", "init-a"), waiting("PodInitializing", "init-b")], [], "Init:0/2"),
    ([running("init-a", ready=False), waiting("PodInitializing", "init-b")], [], "Init:0/2"),
    ([terminated("init-a"), running("init-b", ready=False)], [], "Init:1/2"),
    ([waiting("CrashLoopBackOff", "init-a", restarts=3)], [], "Init:CrashLoopBackOff"),
    ([terminated("init-a", exit_code=1, reason="Error")], [], "Init:Error"),
    ([terminated("init-a", exit_code=2)], [], "Init:ExitCode:2"),
    ([terminated("init-a", exit_code=2, signal=15)], [], "Init:Signal:15"),
    ([terminated("init-a"), terminated("init-b")], [waiting("PodInitializing")], "PodInitializing"),
])
def test_init_containers(init_statuses: list, statuses: list, status: str) -> None:
    obj = pod(phase="Pending", init=INITS, init_statuses=init_statuses, statuses=statuses)
    assert cells(obj)[2] == status


def test_initialized_pod_shows_main_containers() -> None:
    obj = pod(init=INITS, init_statuses=[terminated("init-a"), terminated("init-b")], statuses=[running()])
    assert cells(obj)[1:3] == ["1/1", "Running"]


def test_init_restarts_count_while_initializing() -> None:
    obj = pod(phase="Pending", init=INITS, init_statuses=[waiting("CrashLoopBackOff", "init-a", restarts=4)],
              statuses=[waiting("PodInitializing", restarts=0)])
    assert cells(obj)[3] == "4"


def test_crashloop_restarts_with_last_restart_age() -> None:
    last = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2025-03-01T11:55:00Z"}}
    obj = pod(statuses=[waiting("CrashLoopBackOff", restarts=5, lastState=last)])
    assert cells(obj)[1:4] == ["0/1", "CrashLoopBackOff", "5 (5m ago)"]


def test_restarts_without_termination_time_are_plain() -> None:
    assert cells(pod(statuses=[running(restarts=2)]))[3] == "2"


def test_terminating_and_node_lost() -> None:
    deleting = pod(statuses=[running()])
    deleting["metadata"]["deletionTimestamp"] = "2025-03-01T11:59:00Z"
    assert cells(deleting)[2] == "Terminating"
    lost = pod(statuses=[running()], status__reason="NodeLost")
    lost["metadata"]["deletionTimestamp"] = "2025-03-01T11:59:00Z"
    assert cells(lost)[2] == "Unknown"
    finished = pod(phase="Succeeded", statuses=[terminated(reason="Completed")])
    finished["metadata"]["deletionTimestamp"] = "2025-03-01T11:59:00Z"
    assert cells(finished)[2] == "Completed"  # terminal pods are not shown as Terminating


def test_completed_container_next_to_running_one() -> None:
    statuses = [terminated("c0", reason="Completed"), running("c1")]
    ready_cond = [{"type": "Ready", "status": "True"}]
    assert cells(pod(2, statuses=statuses, status__conditions=ready_cond))[1:3] == ["1/2", "Running"]
    assert cells(pod(2, statuses=statuses))[2] == "NotReady"


def test_sidecar_init_containers_count_as_containers() -> None:
    init = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    init_statuses = [running("proxy", restarts=1, started=True)]
    obj = pod(init=init, init_statuses=init_statuses, statuses=[running(restarts=2)],
              status__conditions=[{"type": "Initialized", "status": "True"}])
    assert cells(obj)[1:4] == ["2/2", "Running", "3"]


def test_wide_columns() -> None:
    obj = pod(statuses=[running()], status__nominatedNodeName="node-2",
              spec__readinessGates=[{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}],
              status__conditions=[{"type": "example.com/lb", "status": "True"},
                                  {"type": "example.com/dns", "status": "False"}])
    assert cells(obj)[5:] == ["<none>", "<none>", "node-2", "1/2"]


def test_row_conditions_and_included_object() -> None:
    done = pod(phase="Succeeded", statuses=[terminated(reason="Completed")])
    table = build_table("", "pods", [done, pod(statuses=[running()])], now=NOW)
    first, second = table["rows"]
    assert first["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                    "message": "The pod has completed successfully."}]
    assert "conditions" not in second
    assert first["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": done["metadata"]}
    full = build_table("", "pods", [done], include_object="Object", now=NOW)
    assert full["rows"][0]["object"] is done
    bare = build_table("", "pods", [done], include_object="None", now=NOW)
    assert "object" not in bare["rows"][0]
    with pytest.raises(ValueError):
        build_table("", "pods", [done], include_object="Everything")

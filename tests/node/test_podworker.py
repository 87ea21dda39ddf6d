"""Pod status as the kubelet computes it (phase, conditions, container statuses), and pod
worker behaviour on the fake runtime: init failures, restart policies, termination."""

from __future__ import annotations

from pathlib import Path

from sampan.client.interface import PODS
from sampan.client.local import LocalClient
from sampan.node.podstatus import PodView, Tracked, build_status, container_status, pod_phase, qos_class
from sampan.node.runtimes.base import ContainerState
from tests.node.fakes import pod
from tests.node.agent_harness import Harness, eventually


def running(name: str = "c") -> Tracked:
    return Tracked(name, id="x", state=ContainerState("x", "u", name, "running", started_at=1_700_000_000.0),
                   waiting_reason="", ready=True, started=True)


def exited(name: str = "c", code: int = 0, oom: bool = False) -> Tracked:
    state = ContainerState("x", "u", name, "exited", exit_code=code, started_at=1.0, finished_at=2.0, oom_killed=oom)
    return Tracked(name, id="x", state=state, waiting_reason="")


def test_phase_rules() -> None:
    assert pod_phase("Always", [], [running()], True) == "Running"
    assert pod_phase("Always", [], [Tracked("c")], True) == "Pending"
    assert pod_phase("Never", [], [exited(code=0), exited("d", code=0)], True) == "Succeeded"
    assert pod_phase("Never", [], [exited(code=0), exited("d", code=1)], True) == "Failed"
    assert pod_phase("OnFailure", [], [exited(code=1)], True) == "Running"  # about to restart
    assert pod_phase("Always", [], [exited(code=0)], True) == "Running"
    assert pod_phase("Never", [exited("i", code=1)], [Tracked("c")], False) == "Failed"
    assert pod_phase("Always", [exited("i", code=1)], [Tracked("c")], False) == "Pending"


def test_container_status_shapes() -> None:
    cs = container_status(running())
    assert cs["state"] == {"running": {"startedAt": "2023-11-14T22:13:20Z"}}
    assert cs["ready"] and cs["started"] and cs["containerID"] == "oci://x"
    oom = container_status(exited(code=137, oom=True))
    assert oom["state"]["terminated"]["reason"] == "OOMKilled"
    assert container_status(exited(code=0))["state"]["terminated"]["reason"] == "Completed"
    assert container_status(exited(code=2))["state"]["terminated"]["reason"] == "Error"
    waiting = Tracked("c", waiting_reason="CrashLoopBackOff", waiting_message="back-off 10s",
                      last_terminated={"exitCode": 1})
    ws = container_status(waiting)
    assert ws["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    assert ws["lastState"] == {"terminated": {"exitCode": 1}} and ws["started"] is False


def test_conditions_and_transitions() -> None:
    p = pod("x")
    p["status"] = {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"},
                                  {"type": "Ready", "status": "False", "lastTransitionTime": "T1"},
                                  {"type": "Initialized", "status": "True", "lastTransitionTime": "T2"}]}
    not_ready = running()
    not_ready.ready = False
    status = build_status(p, PodView("10.0.0.1", "198.18.0.9", sandbox_ready=True), [], [not_ready], True)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ContainersNotReady"
    assert conds["Ready"]["message"] == "containers with unready status: [c]"
    assert conds["Ready"]["lastTransitionTime"] == "T1"  # unchanged: kept
    assert conds["Initialized"]["lastTransitionTime"] == "T2"
    assert conds["PodScheduled"]["lastTransitionTime"] == "T0"
    assert status["podIPs"] == [{"ip": "198.18.0.9"}] and status["hostIPs"] == [{"ip": "10.0.0.1"}]
    ready = build_status(p, PodView("10.0.0.1", sandbox_ready=True), [], [running()], True)
    conds = {c["type"]: c for c in ready["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Ready"]["lastTransitionTime"] != "T1"


def test_qos_class() -> None:
    assert qos_class(pod("a")) == "BestEffort"
    res = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert qos_class(pod("b", containers=[{"name": "c", "image": "i", "resources": res}])) == "Guaranteed"
    assert qos_class(pod("c", containers=[{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}])) == "Burstable"


async def _phase(client: LocalClient, name: str, phase: str) -> dict:
    async def check() -> dict | None:
        p = await client.get(PODS, name, "default")
        return p if p.get("status", {}).get("phase") == phase else None

    return await eventually(check)  # type: ignore[no-any-return]


async def test_failed_init_with_never_fails_pod(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    inits = [{"name": "init", "image": "busybox:1.36", "command": ["exit", "4"]}]
    await client.create(PODS, pod("badinit", initContainers=inits, restartPolicy="Never"), "default")
    p = await _phase(client, "badinit", "Failed")
    assert p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert [cid.rsplit("-", 2)[-2] for cid in harness.runtime.started] == ["init"]  # the app never started


async def test_on_failure_success_completes(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["exit", "0"]}]
    await client.create(PODS, pod("job", containers=spec, restartPolicy="OnFailure"), "default")
    p = await _phase(client, "job", "Succeeded")
    conds = {c["type"]: c for c in p["status"]["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PodCompleted"
    assert len(harness.runtime.started) == 1


async def test_env_error_reported(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}]}]
    await client.create(PODS, pod("noenv", containers=spec), "default")

    async def waiting() -> dict | None:
        p = await client.get(PODS, "noenv", "default")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        w = cs.get("state", {}).get("waiting", {})
        return w if w.get("reason") == "CreateContainerConfigError" else None

    w = await eventually(waiting)
    assert w["message"] == 'configmap "missing" not found'


async def test_admission_rejects_pod_that_does_not_fit(harness: Harness, client: LocalClient,
                                                       tmp_path: Path) -> None:
    await harness.start()
    big = [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "100000"}}}]
    await client.create(PODS, pod("huge", containers=big), "default")
    p = await _phase(client, "huge", "Failed")
    assert p["status"]["reason"] == "OutOfcpu"
    assert "Node didn't have enough resource: cpu" in p["status"]["message"]
    assert harness.runtime.started == []


async def _terminated(client: LocalClient, name: str) -> dict:
    async def check() -> dict | None:
        p = await client.get(PODS, name, "default")
        cs = (p.get("status", {}).get("containerStatuses") or [{}])[0]
        return cs.get("state", {}).get("terminated")

    return await eventually(check)  # type: ignore[no-any-return]


async def test_termination_message(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["msg", "it broke"]}]
    await client.create(PODS, pod("msg", containers=spec, restartPolicy="Never"), "default")
    assert (await _terminated(client, "msg"))["message"] == "it broke"
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["msg", "custom path"],
             "terminationMessagePath": "/tmp/msg"}]
    await client.create(PODS, pod("msg2", containers=spec, restartPolicy="Never"), "default")
    assert (await _terminated(client, "msg2"))["message"] == "custom path"
    # FallbackToLogsOnError: no message written, the log's tail is the message.
    spec = [{"name": "c", "image": "busybox:1.36", "command": ["exit", "1"],
             "terminationMessagePolicy": "FallbackToLogsOnError"}]
    await client.create(PODS, pod("msg3", containers=spec, restartPolicy="Never"), "default")
    assert (await _terminated(client, "msg3"))["message"] == "started exit 1\n"


async def test_hooks(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    spec = [{"name": "c", "image": "busybox:1.36", "lifecycle": {
        "postStart": {"exec": {"command": ["post-start"]}}, "preStop": {"exec": {"command": ["pre-stop"]}}}}]
    await client.create(PODS, pod("hooked", containers=spec, terminationGracePeriodSeconds=3), "default")
    await _phase(client, "hooked", "Running")
    assert harness.runtime.execs == [["post-start"]]
    await client.delete(PODS, "hooked", "default")

    async def gone() -> bool:
        return ["pre-stop"] in harness.runtime.execs and bool(harness.runtime.stopped)

    await eventually(gone)
    # A failing postStart hook kills the container.
    harness.runtime.exec_results["bad-hook"] = 1
    spec = [{"name": "c", "image": "busybox:1.36", "lifecycle": {"postStart": {"exec": {"command": ["bad-hook"]}}}}]
    await client.create(PODS, pod("badhook", containers=spec, restartPolicy="Never"), "default")
    await _phase(client, "badhook", "Failed")
    from sampan.client.interface import EVENTS

    events = (await client.list(EVENTS, "default"))["items"]
    assert any(e["reason"] == "FailedPostStartHook" for e in events)


async def test_active_deadline_fails_pod(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    await client.create(PODS, pod("late", activeDeadlineSeconds=1, restartPolicy="Never"), "default")
    p = await _phase(client, "late", "Failed")
    assert p["status"]["reason"] == "DeadlineExceeded"
    assert harness.runtime.stopped == harness.runtime.started[:1]


async def test_image_change_restarts_container(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    harness.images.add("busybox:1.37")
    await client.create(PODS, pod("img"), "default")
    await _phase(client, "img", "Running")
    await client.patch(PODS, "img", {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}},
                       "strategic", namespace="default")

    async def updated() -> dict | None:
        p = await client.get(PODS, "img", "default")
        cs = p["status"]["containerStatuses"][0]
        return cs if cs["image"].endswith("busybox:1.37") and "running" in cs["state"] else None

    cs = await eventually(updated)
    assert cs["restartCount"] == 1 and len(harness.runtime.started) == 2


def test_readiness_gates_and_foreign_conditions() -> None:
    p = pod("gated", readinessGates=[{"conditionType": "example.com/ok"}])
    p["status"] = {"conditions": [{"type": "PodScheduled", "status": "True"}]}
    status = build_status(p, PodView("10.0.0.1", sandbox_ready=True), [], [running()], True)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    assert ready["message"] == 'corresponding condition of pod readiness gate "example.com/ok" does not exist.'
    p["status"]["conditions"].append({"type": "example.com/ok", "status": "True"})
    status = build_status(p, PodView("10.0.0.1", sandbox_ready=True), [], [running()], True)
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds["Ready"] == "True" and conds["example.com/ok"] == "True"  # the gate's own condition is kept


async def test_ephemeral_container_runs_once_beside_the_pod(harness: Harness, client: LocalClient) -> None:
    await harness.start()
    await client.create(PODS, pod("dbg"), "default")
    await _phase(client, "dbg", "Running")
    debugger = {"name": "debugger", "image": "busybox:1.36", "command": ["sh"], "targetContainerName": "c"}
    await client.patch(PODS, "dbg", {"spec": {"ephemeralContainers": [debugger]}}, "strategic",
                       namespace="default", subresource="ephemeralcontainers")

    async def ephemeral_state(kind: str) -> dict | None:
        p = await client.get(PODS, "dbg", "default")
        [status] = p["status"].get("ephemeralContainerStatuses") or [{}]
        return p if kind in status.get("state", {}) else None

    p = await eventually(lambda: ephemeral_state("running"))
    status = p["status"]["ephemeralContainerStatuses"][0]
    assert status["name"] == "debugger" and status["ready"] is False and status["restartCount"] == 0
    conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
    assert conds["Ready"] == "True" and p["status"]["phase"] == "Running"  # the pod is judged without it
    [started] = [cid for cid in harness.runtime.started if "-debugger-" in cid]
    assert harness.runtime.configs[started].pid_namespace == ""  # the fake's target has no pid to join
    # It exits: it is never restarted, and the pod goes on.
    harness.runtime.crash(started, 3)
    p = await eventually(lambda: ephemeral_state("terminated"))
    assert p["status"]["ephemeralContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    await client.patch(PODS, "dbg", {"metadata": {"labels": {"poke": "1"}}}, "merge", namespace="default")
    await _phase(client, "dbg", "Running")
    assert [cid for cid in harness.runtime.started if "-debugger-" in cid] == [started]

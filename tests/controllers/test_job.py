"""The Job controller, with the test playing the kubelet (it patches pod phases)."""

from __future__ import annotations

from sampan.client.interface import EVENTS, JOBS, PODS
from sampan.controllers.base import ControllerOptions
from tests.controllers.conftest import eventually

FAST = ControllerOptions(extra={"job_backoff_base": 0.01})


def job_body(name: str, **spec) -> dict:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {"template": template, **spec}}


async def job_pods(client, name: str, active_only: bool = True) -> list[dict]:
    pods = (await client.list(PODS, "default", label_selector=f"batch.kubernetes.io/job-name={name}"))["items"]
    if active_only:
        pods = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")]
    return pods


async def finish(client, pod: dict, phase: str, exit_code: int = 0) -> None:
    status = {"phase": phase, "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": exit_code}}}]}
    await client.patch(PODS, pod["metadata"]["name"], {"status": status}, "merge", "default", subresource="status")


def conditions(job: dict) -> dict[str, dict]:
    return {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []}


async def wait_condition(client, name: str, type_: str) -> dict:
    async def check() -> dict | None:
        job = await client.get(JOBS, name, "default")
        cond = conditions(job).get(type_)
        return job if cond and cond["status"] == "True" else None

    return await eventually(check)


async def wait_pods(client, name: str, count: int) -> list[dict]:
    async def check() -> list[dict] | None:
        pods = await job_pods(client, name)
        return pods if len(pods) == count else None

    return await eventually(check)


async def test_selector_and_labels_defaulted(client) -> None:
    job = await client.create(JOBS, job_body("labels"), "default")
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"]["matchLabels"] == {"batch.kubernetes.io/controller-uid": uid}
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "labels" and labels["controller-uid"] == uid


async def test_job_runs_to_completion(client, start_controllers) -> None:
    await start_controllers("job")
    await client.create(JOBS, job_body("pi", completions=3, parallelism=2), "default")
    done = 0
    while done < 3:
        pods = await wait_pods(client, "pi", min(2, 3 - done))
        for pod in pods:
            assert "batch.kubernetes.io/job-tracking" in pod["metadata"]["finalizers"]
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
        await finish(client, pods[0], "Succeeded")
        done += 1
    job = await wait_condition(client, "pi", "Complete")
    assert job["status"]["succeeded"] == 3
    assert job["status"]["completionTime"] and job["status"]["startTime"]
    assert conditions(job)["SuccessCriteriaMet"]["reason"] == "CompletionsReached"
    assert conditions(job)["Complete"]["message"] == "Reached expected number of succeeded pods"

    async def released() -> bool:
        pods = await job_pods(client, "pi", active_only=False)
        return len(pods) == 3 and all(not p["metadata"].get("finalizers") for p in pods)

    assert await eventually(released)

    async def reasons() -> set[str]:
        events = (await client.list(EVENTS, "default"))["items"]
        found = {e["reason"] for e in events if e["involvedObject"].get("name") == "pi"}
        return found if {"SuccessfulCreate", "Completed"} <= found else set()

    assert await eventually(reasons)


async def test_backoff_limit_fails_job(client, start_controllers) -> None:
    await start_controllers("job", options=FAST)
    await client.create(JOBS, job_body("flaky", backoffLimit=1), "default")
    for _ in range(2):
        pods = await wait_pods(client, "flaky", 1)
        await finish(client, pods[0], "Failed", exit_code=1)
    job = await wait_condition(client, "flaky", "Failed")
    assert conditions(job)["Failed"]["reason"] == "BackoffLimitExceeded"
    assert conditions(job)["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2 and job["status"].get("active", 0) == 0


async def test_active_deadline(client, start_controllers) -> None:
    await start_controllers("job")
    await client.create(JOBS, job_body("slow", activeDeadlineSeconds=1), "default")
    await wait_pods(client, "slow", 1)
    job = await wait_condition(client, "slow", "Failed")
    assert conditions(job)["Failed"]["reason"] == "DeadlineExceeded"
    assert await job_pods(client, "slow") == []


async def test_indexed_job(client, start_controllers) -> None:
    await start_controllers("job")
    await client.create(JOBS, job_body("idx", completions=3, parallelism=3, completionMode="Indexed"), "default")
    pods = await wait_pods(client, "idx", 3)
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(by_index) == ["0", "1", "2"]
    assert by_index["1"]["spec"]["hostname"] == "idx-1"
    assert by_index["1"]["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
    env = by_index["1"]["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "JOB_COMPLETION_INDEX"
    for pod in pods:
        await finish(client, pod, "Succeeded")
    job = await wait_condition(client, "idx", "Complete")
    assert job["status"]["completedIndexes"] == "0-2"
    assert job["status"]["succeeded"] == 3


async def test_suspend_and_resume(client, start_controllers) -> None:
    await start_controllers("job")
    await client.create(JOBS, job_body("paused", suspend=True), "default")
    job = await wait_condition(client, "paused", "Suspended")
    assert conditions(job)["Suspended"]["reason"] == "JobSuspended"
    assert await job_pods(client, "paused") == []
    await client.patch(JOBS, "paused", {"spec": {"suspend": False}}, "merge", "default")
    await wait_pods(client, "paused", 1)

    async def resumed() -> bool:
        cond = conditions(await client.get(JOBS, "paused", "default")).get("Suspended")
        return bool(cond) and cond["status"] == "False" and cond["reason"] == "JobResumed"

    assert await eventually(resumed)


async def test_pod_failure_policy_fail_job(client, start_controllers) -> None:
    await start_controllers("job")
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    body = job_body("policy", backoffLimit=6, podFailurePolicy=policy)
    await client.create(JOBS, body, "default")
    pods = await wait_pods(client, "policy", 1)
    await finish(client, pods[0], "Failed", exit_code=42)
    job = await wait_condition(client, "policy", "Failed")
    failed = conditions(job)["Failed"]
    assert failed["reason"] == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in failed["message"]


async def test_status_settles(client, start_controllers) -> None:
    """Once nothing changes, the controller stops writing the job's status."""
    await start_controllers("job")
    await client.create(JOBS, job_body("quiet"), "default")
    await wait_pods(client, "quiet", 1)

    async def stable() -> bool:
        first = (await client.get(JOBS, "quiet", "default"))["metadata"]["resourceVersion"]
        import asyncio

        await asyncio.sleep(0.3)
        return (await client.get(JOBS, "quiet", "default"))["metadata"]["resourceVersion"] == first

    assert await eventually(stable)


async def test_deleted_job_releases_its_pods(client, start_controllers) -> None:
    await start_controllers("job", "garbagecollector")
    await client.create(JOBS, job_body("bye", parallelism=2, completions=2), "default")
    await wait_pods(client, "bye", 2)
    await client.delete(JOBS, "bye", "default", propagation_policy="Foreground")

    async def all_gone() -> bool:
        return await job_pods(client, "bye", active_only=False) == []

    assert await eventually(all_gone)

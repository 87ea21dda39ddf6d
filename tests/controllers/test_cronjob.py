"""The CronJob controller on a fake clock: jobs per scheduled time, concurrency
policies, suspend, starting deadline, active tracking and history limits."""

from __future__ import annotations

import asyncio
import time

from sampan.api.errors import APIError
from sampan.client.interface import CRONJOBS, EVENTS, JOBS
from sampan.controllers.util.conditions import parse_time, rfc3339
from tests.controllers.conftest import eventually


def cronjob_body(name: str, schedule: str = "*/5 * * * *", **spec) -> dict:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    job_template = {"metadata": {"labels": {"app": name}}, "spec": {"template": template}}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": job_template, **spec},
    }


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def setup(client, start_controllers, name: str, **spec) -> tuple[Clock, dict]:
    manager = await start_controllers("cronjob")
    cj = await client.create(CRONJOBS, cronjob_body(name, **spec), "default")
    created = parse_time(cj["metadata"]["creationTimestamp"])
    # Start just before the first five-minute mark after creation.
    first = (int(created // 300) + 1) * 300
    clock = Clock(first - 1)
    manager.context.clock = clock
    return clock, cj


async def advance(client, clock: Clock, name: str, seconds: float) -> None:
    clock.now += seconds
    await client.patch(CRONJOBS, name, {"metadata": {"annotations": {"poke": str(clock.now)}}}, "merge", "default")


async def owned_jobs(client, count: int) -> list[dict]:
    async def check() -> list[dict] | None:
        jobs = [j for j in (await client.list(JOBS, "default"))["items"] if not j["metadata"].get("deletionTimestamp")]
        return jobs if len(jobs) == count else None

    return await eventually(check)


async def complete(client, job: dict, type_: str = "Complete") -> None:
    now = rfc3339(time.time())
    cond = {"type": type_, "status": "True", "lastTransitionTime": now, "reason": "Test"}
    status = {"conditions": [cond], "startTime": now}
    if type_ == "Complete":
        status["completionTime"] = now
    await client.patch(JOBS, job["metadata"]["name"], {"status": status}, "merge", "default", subresource="status")


async def reasons(client, name: str) -> list[str]:
    return [e["reason"] for e in (await client.list(EVENTS, "default"))["items"] if e["involvedObject"].get("name") == name]


async def test_creates_job_at_scheduled_time(client, start_controllers) -> None:
    clock, cj = await setup(client, start_controllers, "tick")
    await asyncio.sleep(0.2)
    assert (await client.list(JOBS, "default"))["items"] == []  # not yet time
    await advance(client, clock, "tick", 2)
    [job] = await owned_jobs(client, 1)
    scheduled = int(clock.now // 300) * 300
    assert job["metadata"]["name"] == f"tick-{scheduled // 60}"
    assert job["metadata"]["labels"]["app"] == "tick"
    assert job["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    assert "batch.kubernetes.io/cronjob-scheduled-timestamp" in job["metadata"]["annotations"]

    async def status_tracks() -> dict | None:
        status = (await client.get(CRONJOBS, "tick", "default")).get("status") or {}
        return status if status.get("active") else None

    status = await eventually(status_tracks)
    assert status["active"][0]["name"] == job["metadata"]["name"]
    assert parse_time(status["lastScheduleTime"]) == scheduled

    await complete(client, job)

    async def finished() -> dict | None:
        status = (await client.get(CRONJOBS, "tick", "default")).get("status") or {}
        return status if not status.get("active") and status.get("lastSuccessfulTime") else None

    assert await eventually(finished)
    assert "SuccessfulCreate" in await reasons(client, "tick")


async def test_forbid_skips_while_running(client, start_controllers) -> None:
    clock, _ = await setup(client, start_controllers, "forbid", concurrencyPolicy="Forbid")
    await advance(client, clock, "forbid", 2)
    await owned_jobs(client, 1)
    await advance(client, clock, "forbid", 300)

    async def refused() -> bool:
        return "JobAlreadyActive" in await reasons(client, "forbid")

    assert await eventually(refused)
    assert len((await client.list(JOBS, "default"))["items"]) == 1


async def test_replace_deletes_running_job(client, start_controllers) -> None:
    clock, _ = await setup(client, start_controllers, "replace", concurrencyPolicy="Replace")
    await advance(client, clock, "replace", 2)
    [first] = await owned_jobs(client, 1)
    await advance(client, clock, "replace", 300)

    async def replaced() -> list | None:
        jobs = [j["metadata"]["name"] for j in (await client.list(JOBS, "default"))["items"]]
        return jobs if len(jobs) == 1 and jobs[0] != first["metadata"]["name"] else None

    assert await eventually(replaced)


async def test_allow_runs_concurrently(client, start_controllers) -> None:
    clock, _ = await setup(client, start_controllers, "allow")
    await advance(client, clock, "allow", 2)
    await owned_jobs(client, 1)
    await advance(client, clock, "allow", 300)
    jobs = await owned_jobs(client, 2)
    assert len({j["metadata"]["name"] for j in jobs}) == 2


async def test_suspended_cronjob_creates_nothing(client, start_controllers) -> None:
    clock, _ = await setup(client, start_controllers, "sleepy", suspend=True)
    await advance(client, clock, "sleepy", 2)
    await asyncio.sleep(0.3)
    assert (await client.list(JOBS, "default"))["items"] == []
    await client.patch(CRONJOBS, "sleepy", {"spec": {"suspend": False}}, "merge", "default")
    await owned_jobs(client, 1)


async def test_starting_deadline_limits_catch_up(client, start_controllers) -> None:
    clock, _ = await setup(client, start_controllers, "late", startingDeadlineSeconds=10)
    # Twenty seconds past the scheduled time: outside the 10 s window, so nothing runs.
    await advance(client, clock, "late", 21)
    await asyncio.sleep(0.3)
    assert (await client.list(JOBS, "default"))["items"] == []


async def test_history_limits(client, start_controllers) -> None:
    clock, _ = await setup(client, start_controllers, "hist", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0)
    names = []
    for i in range(3):
        await advance(client, clock, "hist", 2 if i == 0 else 300)
        name = f"hist-{int(clock.now // 300) * 5}"

        async def created(name: str = name) -> dict | None:
            try:
                return await client.get(JOBS, name, "default")
            except APIError:
                return None

        job = await eventually(created)
        names.append(name)
        await complete(client, job, "Failed" if i == 2 else "Complete")

    async def trimmed() -> list | None:
        jobs = sorted(j["metadata"]["name"] for j in (await client.list(JOBS, "default"))["items"])
        return jobs if jobs == [names[1]] else None

    assert await eventually(trimmed)

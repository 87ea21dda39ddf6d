"""Finished jobs with ttlSecondsAfterFinished are deleted once the TTL has passed."""

from __future__ import annotations

import asyncio
import time

from sampan.api.errors import APIError
from sampan.client.interface import JOBS
from sampan.controllers.util.conditions import rfc3339
from tests.controllers.conftest import eventually
from tests.controllers.test_job import finish, job_body, wait_pods


async def gone(client, name: str) -> bool:
    try:
        await client.get(JOBS, name, "default")
    except APIError as exc:
        return exc.code == 404
    return False


async def mark_complete(client, name: str, when: float) -> None:
    job = await client.get(JOBS, name, "default")
    cond = {"type": "Complete", "status": "True", "lastTransitionTime": rfc3339(when), "reason": "CompletionsReached"}
    job["status"] = {"conditions": [cond], "completionTime": rfc3339(when), "startTime": rfc3339(when), "succeeded": 1}
    await client.update(JOBS, job, subresource="status")


async def test_ttl_counts_from_completion(client, start_controllers) -> None:
    now = [time.time()]
    manager = await start_controllers("ttlafterfinished", "garbagecollector")
    manager.context.clock = lambda: now[0]
    await client.create(JOBS, job_body("short", ttlSecondsAfterFinished=60), "default")
    await mark_complete(client, "short", now[0])
    await asyncio.sleep(0.2)
    assert not await gone(client, "short")  # 60 s have not passed on the fake clock
    now[0] += 61
    await client.patch(JOBS, "short", {"metadata": {"labels": {"poke": "1"}}}, "merge", "default")
    assert await eventually(lambda: gone(client, "short"))


async def test_unfinished_or_no_ttl_jobs_stay(client, start_controllers) -> None:
    await start_controllers("ttlafterfinished")
    await client.create(JOBS, job_body("running", ttlSecondsAfterFinished=0), "default")
    await client.create(JOBS, job_body("forever"), "default")
    await mark_complete(client, "forever", time.time() - 3600)
    await asyncio.sleep(0.3)
    assert not await gone(client, "running") and not await gone(client, "forever")


async def test_completed_job_and_pods_removed(client, start_controllers) -> None:
    await start_controllers("job", "ttlafterfinished", "garbagecollector")
    await client.create(JOBS, job_body("once", ttlSecondsAfterFinished=0), "default")
    pods = await wait_pods(client, "once", 1)
    await finish(client, pods[0], "Succeeded")
    assert await eventually(lambda: gone(client, "once"))

"""Deletes finished Jobs ``spec.ttlSecondsAfterFinished`` seconds after they finished.

As upstream, the TTL is checked again against a fresh GET before deleting (it may have
been changed), and the job is deleted in the foreground so its pods go first.
"""

from __future__ import annotations

from sampan.client.interface import JOBS, Obj, is_conflict, is_not_found, split_key
from sampan.controllers.base import Controller, register
from sampan.controllers.util.jobs import finish_time, is_finished


def _expires_in(job: Obj, now: float) -> float | None:
    """Seconds until the job may go (<= 0: now); None if it has no TTL or is not finished."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or job["metadata"].get("deletionTimestamp") or not is_finished(job):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished + int(ttl) - now


@register
class TTLAfterFinishedController(Controller):
    name = "ttlafterfinished"
    component = "ttl-after-finished-controller"

    def setup(self) -> None:
        self.jobs = self.watch(JOBS)

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        left = _expires_in(job, self.ctx.clock())
        if left is None:
            return None
        if left > 0:
            return left
        namespace, name = split_key(key)
        try:
            fresh = await self.client.get(JOBS, name, namespace)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        left = _expires_in(fresh, self.ctx.clock())
        if left is None:
            return None
        if left > 0:
            return left
        try:
            await self.client.delete(
                JOBS, name, namespace, propagation_policy="Foreground",
                preconditions={"uid": fresh["metadata"]["uid"]},
            )
        except Exception as exc:
            if not (is_not_found(exc) or is_conflict(exc)):
                raise
        return None

"""The CronJob controller: creates a Job for each scheduled time, named
``<cronjob>-<minutes since the epoch>``, honouring suspend, startingDeadlineSeconds and
concurrencyPolicy, tracks the running ones in ``status.active`` and trims history."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from sampan.client.events import NORMAL, WARNING
from sampan.client.interface import CRONJOBS, JOBS, Obj, is_not_found, split_key
from sampan.controllers.base import Controller, controller_owner, register
from sampan.controllers.util.conditions import parse_time, rfc3339
from sampan.controllers.util.cron import Schedule, most_recent
from sampan.controllers.util.jobs import finished_condition
from sampan.controllers.util.pods import controller_ref

log = logging.getLogger(__name__)

OWNER_INDEX = "cronjob"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SLACK = 0.1  # upstream wakes 100 ms after the scheduled time


def _cronjob_key_of_job(job: Obj) -> list[str]:
    ref = controller_owner(job)
    if ref is None or ref.get("kind") != "CronJob":
        return []
    return [f"{job['metadata'].get('namespace')}/{ref.get('name')}"]


def _job_ref(job: Obj) -> Obj:
    m = job["metadata"]
    return {
        "apiVersion": "batch/v1", "kind": "Job", "name": m["name"], "namespace": m.get("namespace", ""),
        "uid": m.get("uid", ""), "resourceVersion": m.get("resourceVersion", ""),
    }


def job_name(cronjob: str, scheduled: float) -> str:
    return f"{cronjob}-{int(scheduled // 60)}"


@register
class CronJobController(Controller):
    name = "cronjob"
    component = "cronjob-controller"

    def setup(self) -> None:
        self.cronjobs = self.watch(CRONJOBS)
        self.jobs = self.informer(JOBS)
        self.jobs.add_indexer(OWNER_INDEX, _cronjob_key_of_job)

        def enqueue(job: Obj) -> None:
            for key in _cronjob_key_of_job(job):
                self.queue.add(key)

        self.jobs.add_handler(on_add=enqueue, on_update=lambda _o, n: enqueue(n), on_delete=self._job_deleted)
        # Jobs this controller created: not "unexpected" when the cached status lags behind.
        self._created: set[str] = set()

    def _job_deleted(self, job: Obj) -> None:
        self._created.discard(job["metadata"].get("uid", ""))
        for key in _cronjob_key_of_job(job):
            self.queue.add(key)

    async def reconcile(self, key: str) -> float | None:
        cj = self.cronjobs.get(key)
        if cj is None:
            return None
        cj = {**cj, "apiVersion": "batch/v1", "kind": "CronJob"}
        namespace, _name = split_key(key)
        uid = cj["metadata"]["uid"]
        owned = [j for j in self.jobs.by_index(OWNER_INDEX, key) if (controller_owner(j) or {}).get("uid") == uid]
        old_status = cj.get("status") or {}
        status: dict[str, Any] = {k: v for k, v in old_status.items()}
        await self._track_active(cj, owned, status)
        try:
            requeue = await self._schedule(cj, owned, status)
        finally:
            await self._write_status(cj, old_status, status)
        await self._cleanup_history(cj, owned)
        return requeue

    async def _track_active(self, cj: Obj, owned: list[Obj], status: Obj) -> None:
        active = {ref.get("uid"): ref for ref in status.get("active") or []}
        by_uid = {j["metadata"]["uid"]: j for j in owned}
        for uid, job in by_uid.items():
            done = finished_condition(job)
            if done is None:
                if uid not in active and not job["metadata"].get("deletionTimestamp"):
                    if uid not in self._created:
                        self.recorder.event(cj, WARNING, "UnexpectedJob", f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}")
                    active[uid] = _job_ref(job)
                continue
            if uid in active:
                del active[uid]
                self.recorder.event(cj, NORMAL, "SawCompletedJob", f"Saw completed job: {job['metadata']['name']}, status: {done['type']}")
            if done["type"] == "Complete":
                finished = (job.get("status") or {}).get("completionTime")
                last = parse_time(status.get("lastSuccessfulTime"))
                when = parse_time(finished)
                if when is not None and (last is None or when > last):
                    status["lastSuccessfulTime"] = finished
        for uid, ref in list(active.items()):
            if uid in by_uid:
                continue
            try:
                live = await self.client.get(JOBS, ref.get("name", ""), cj["metadata"]["namespace"])
                if live["metadata"].get("uid") == uid:
                    continue
            except Exception as exc:
                if not is_not_found(exc):
                    raise
            del active[uid]
            self.recorder.event(cj, NORMAL, "MissingJob", f"Active job went missing: {ref.get('name')}")
        status["active"] = sorted(active.values(), key=lambda r: r.get("name", ""))

    async def _schedule(self, cj: Obj, owned: list[Obj], status: Obj) -> float | None:
        spec = cj.get("spec") or {}
        if cj["metadata"].get("deletionTimestamp"):
            return None
        tz: tzinfo = UTC
        if spec.get("timeZone"):
            try:
                tz = ZoneInfo(spec["timeZone"])
            except Exception as exc:  # noqa: BLE001 - any unknown zone
                self.recorder.event(cj, WARNING, "UnknownTimeZone", f'invalid timeZone: "{spec["timeZone"]}": {exc}')
                return None
        if spec.get("suspend"):
            return None
        try:
            schedule = Schedule.parse(spec.get("schedule") or "")
        except ValueError as exc:
            self.recorder.event(cj, WARNING, "InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {exc}")
            return None
        now = self.ctx.clock()
        earliest = parse_time(status.get("lastScheduleTime")) or parse_time(cj["metadata"].get("creationTimestamp")) or now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - int(deadline))
        scheduled, missed = most_recent(schedule, earliest, now, tz)
        nxt = schedule.next_after(now, tz)
        requeue = (nxt - now + NEXT_SLACK) if nxt is not None else None
        if scheduled is None:
            return requeue
        if missed > 100:
            self.recorder.event(
                cj, WARNING, "TooManyMissedTimes",
                f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            )
        if deadline is not None and scheduled + int(deadline) < now:
            when = format_datetime(datetime.fromtimestamp(scheduled, tz))
            self.recorder.event(cj, WARNING, "MissSchedule", f"Missed scheduled time to start a job: {when}")
            return requeue
        name = job_name(cj["metadata"]["name"], scheduled)
        if any(ref.get("name") == name for ref in status.get("active") or []):
            return requeue
        running = [ref for ref in status.get("active") or []]
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and running:
            self.recorder.event(cj, NORMAL, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
            return requeue
        if policy == "Replace":
            for ref in running:
                await self._delete_job(cj, ref.get("name", ""))
            status["active"] = []
        created = await self._create_job(cj, name, scheduled, tz)
        if created is not None:
            status["active"] = list(status.get("active") or []) + [_job_ref(created)]
        status["lastScheduleTime"] = rfc3339(scheduled)
        return requeue

    async def _create_job(self, cj: Obj, name: str, scheduled: float, tz: tzinfo) -> Obj | None:
        template = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_ANNOTATION] = datetime.fromtimestamp(scheduled, tz).isoformat()
        job: Obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": cj["metadata"]["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [controller_ref(cj)],
            },
            "spec": template.get("spec") or {},
        }
        if not job["metadata"]["labels"]:
            del job["metadata"]["labels"]
        try:
            created = await self.client.create(JOBS, job, cj["metadata"]["namespace"])
        except Exception as exc:
            if getattr(exc, "code", 0) == 409:
                return None  # created already, on an earlier pass
            self.recorder.event(cj, WARNING, "FailedCreate", f"Error creating job: {exc}")
            raise
        self._created.add(created["metadata"]["uid"])
        self.recorder.event(cj, NORMAL, "SuccessfulCreate", f"Created job {name}")
        return created

    async def _delete_job(self, cj: Obj, name: str) -> None:
        try:
            await self.client.delete(JOBS, name, cj["metadata"]["namespace"], propagation_policy="Background")
        except Exception as exc:
            if not is_not_found(exc):
                self.recorder.event(cj, WARNING, "FailedDelete", f"Deleted job: {exc}")
                raise
            return
        self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {name}")

    async def _cleanup_history(self, cj: Obj, owned: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        for type_, limit_field in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(limit_field)
            if limit is None:
                continue
            done = [j for j in owned if (finished_condition(j) or {}).get("type") == type_ and not j["metadata"].get("deletionTimestamp")]
            if len(done) <= int(limit):
                continue
            done.sort(key=lambda j: ((j.get("status") or {}).get("startTime") or j["metadata"].get("creationTimestamp", ""), j["metadata"]["name"]))
            for job in done[: len(done) - int(limit)]:
                await self._delete_job(cj, job["metadata"]["name"])

    async def _write_status(self, cj: Obj, old: Obj, status: Obj) -> None:
        if not status.get("active"):
            status.pop("active", None)
        if status == old:
            return
        patch = {"status": {k: status.get(k) for k in ("active", "lastScheduleTime", "lastSuccessfulTime")}}
        try:
            await self.client.patch(CRONJOBS, cj["metadata"]["name"], patch, "merge", cj["metadata"]["namespace"], subresource="status")
        except Exception as exc:
            if not is_not_found(exc):
                raise

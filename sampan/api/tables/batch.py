"""batch/v1: jobs and cron jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .common import (AGE, CONTAINERS_WIDE, IMAGES_WIDE, NAME, Column, Obj, age, as_int, bool_ptr,
                     container_cells, deleting, dig, format_label_selector, name, register)
from .humanize import human_duration, parse_time, since

JOB_COLUMNS = [
    NAME,
    Column("Status", doc="Status of the job."),
    Column("Completions", doc=("batch.v1.JobStatus", "succeeded")),
    Column("Duration", doc="Time required to complete the job."),
    AGE, CONTAINERS_WIDE, IMAGES_WIDE,
    Column("Selector", doc=("batch.v1.JobSpec", "selector"), priority=1),
]


def _condition(job: Obj, kind: str) -> bool:
    # The first condition of a type decides, like upstream's lookup.
    for cond in dig(job, "status", "conditions", default=[]):
        if cond.get("type") == kind:
            return cond.get("status") == "True"
    return False


def job_status(job: Obj) -> str:
    if _condition(job, "Complete"):
        return "Complete"
    if _condition(job, "Failed"):
        return "Failed"
    if deleting(job):
        return "Terminating"
    if _condition(job, "Suspended"):
        return "Suspended"
    if _condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_completions(job: Obj) -> str:
    spec = job.get("spec") or {}
    succeeded = as_int(dig(job, "status", "succeeded"))
    if spec.get("completions") is not None:
        return f"{succeeded}/{as_int(spec['completions'])}"
    parallelism = as_int(spec.get("parallelism"))
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration(job: Obj, now: datetime) -> str:
    start = parse_time(dig(job, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(dig(job, "status", "completionTime")) or now
    return human_duration(end - start)


@register("batch", "jobs", JOB_COLUMNS)
def job_row(job: Obj, now: datetime) -> list[Any]:
    names, images = container_cells(dig(job, "spec", "template", "spec", "containers"))
    return [
        name(job), job_status(job), job_completions(job), job_duration(job, now), age(job, now),
        names, images, format_label_selector(dig(job, "spec", "selector")),
    ]


CRON_SPEC = "batch.v1.CronJobSpec"
CRONJOB_COLUMNS = [
    NAME,
    Column("Schedule", doc=(CRON_SPEC, "schedule")),
    Column("Timezone", doc=(CRON_SPEC, "timeZone")),
    Column("Suspend", "boolean", doc=(CRON_SPEC, "suspend")),
    Column("Active", "integer", doc=("batch.v1.CronJobStatus", "active")),
    Column("Last Schedule", doc=("batch.v1.CronJobStatus", "lastScheduleTime")),
    AGE, CONTAINERS_WIDE, IMAGES_WIDE,
    Column("Selector", doc=("batch.v1.JobSpec", "selector"), priority=1),
]


@register("batch", "cronjobs", CRONJOB_COLUMNS)
def cronjob_row(cj: Obj, now: datetime) -> list[Any]:
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    last = since(status["lastScheduleTime"], now) if status.get("lastScheduleTime") else "<none>"
    job_spec = dig(spec, "jobTemplate", "spec", default={})
    names, images = container_cells(dig(job_spec, "template", "spec", "containers"))
    return [
        name(cj), spec.get("schedule", ""), spec.get("timeZone") or "<none>", bool_ptr(spec.get("suspend")),
        len(status.get("active") or []), last, age(cj, now), names, images,
        format_label_selector(job_spec.get("selector")),
    ]

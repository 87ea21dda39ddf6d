"""The Job controller: runs pods until enough succeed, or the job fails.

Pods carry the ``batch.kubernetes.io/job-tracking`` finalizer so none is lost before it
is counted: a finished pod's uid first goes into ``status.uncountedTerminatedPods``, then
its finalizer is removed, then it moves into ``succeeded``/``failed``. Finishing takes two
steps as in 1.32: ``SuccessCriteriaMet``/``FailureTarget`` first (remaining pods are
deleted), then ``Complete``/``Failed`` once no pod is left running.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from sampan.client.events import NORMAL, WARNING
from sampan.client.expectations import ControllerExpectations
from sampan.client.interface import JOBS, PODS, Obj, is_not_found
from sampan.controllers.base import Controller, controller_owner, register
from sampan.controllers.util import jobs as ju
from sampan.controllers.util.conditions import get_condition, parse_time, rfc3339, set_condition
from sampan.controllers.util.pods import is_ready, is_terminating, phase, pod_from_template, restart_count

log = logging.getLogger(__name__)

JOB_INDEX = "job"
BACKOFF_BASE = 10.0  # upstream DefaultJobPodFailureBackOff
BACKOFF_CAP = 360.0
SUCCESS_MESSAGE = "Reached expected number of succeeded pods"
REASONS = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
}


def _job_key_of_pod(pod: Obj) -> list[str]:
    ref = controller_owner(pod)
    if ref is None or ref.get("kind") != "Job":
        return []
    return [f"{pod['metadata'].get('namespace')}/{ref.get('name')}"]


def _failed(pod: Obj) -> bool:
    # Deleted pods count as failed: they may never reach the Failed phase (upstream's rule).
    return phase(pod) == "Failed" or (is_terminating(pod) and phase(pod) != "Succeeded")


def _terminal(pod: Obj) -> bool:
    return phase(pod) == "Succeeded" or _failed(pod)


def _normal(status: Obj) -> Obj:
    """Status without empty fields the server may or may not keep, for change detection."""
    return {k: v for k, v in status.items() if v not in ({}, None, [])}


def _condition(type_: str, reason: str, message: str, now: str) -> Obj:
    return {"type": type_, "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": reason, "message": message}


@register
class JobController(Controller):
    name = "job"
    component = "job-controller"
    workers = 2

    def setup(self) -> None:
        self.jobs = self.watch(JOBS)
        self.pods = self.informer(PODS)
        self.pods.add_indexer(JOB_INDEX, _job_key_of_pod)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.expectations = ControllerExpectations()
        self._last_failure: dict[str, float] = {}
        self.backoff_base = float(self.ctx.options.extra.get("job_backoff_base", BACKOFF_BASE))

    # -- pod events --------------------------------------------------------------------
    def _pod_added(self, pod: Obj) -> None:
        for key in _job_key_of_pod(pod):
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in _job_key_of_pod(new):
            if is_terminating(new) and not is_terminating(old):
                self.expectations.deletion_observed(key)
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        for key in _job_key_of_pod(pod):
            if not is_terminating(pod):
                self.expectations.deletion_observed(key)
            self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.get(key)
        pods = self.pods.by_index(JOB_INDEX, key)
        if job is None or ju.is_finished(job):
            if job is None:
                self.expectations.delete(key)
                self._last_failure.pop(key, None)
            # Nothing will count these pods any more: let them go.
            await self._release([p for p in pods if ju.TRACKING_FINALIZER in (p["metadata"].get("finalizers") or ())])
            return None
        uid = job["metadata"]["uid"]
        # Pods of an earlier job of the same name: nobody else will release them.
        stale = [p for p in pods if (controller_owner(p) or {}).get("uid") != uid]
        await self._release([p for p in stale if ju.TRACKING_FINALIZER in (p["metadata"].get("finalizers") or ())])
        pods = [p for p in pods if (controller_owner(p) or {}).get("uid") == uid]
        job = {**job, "apiVersion": "batch/v1", "kind": "Job"}
        spec, old_status = job.get("spec") or {}, job.get("status") or {}
        status: dict[str, Any] = copy.deepcopy(old_status)
        now = self.ctx.clock()
        stamp = rfc3339(now)
        requeue: list[float] = []

        await self._track_terminated(key, job, pods, status, stamp)
        pods = [p for p in self.pods.by_index(JOB_INDEX, key) if (controller_owner(p) or {}).get("uid") == uid]
        active = [p for p in pods if not _terminal(p)]
        suspended = bool(spec.get("suspend"))
        self._suspension(job, status, suspended, stamp)
        if not suspended and not status.get("startTime"):
            status["startTime"] = stamp
        target = self._finish_target(job, status, active, now, requeue)
        if target is not None or suspended:
            await self._delete_pods(key, job, active)
            active = []
        elif self.expectations.satisfied(key) and not job["metadata"].get("deletionTimestamp"):
            active = await self._manage(key, job, status, active, now, requeue)
        uncounted = status.get("uncountedTerminatedPods") or {}
        if target is not None and not active and not any(uncounted.values()):
            self._finish(job, status, target, stamp)
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if is_ready(p))
        status["terminating"] = sum(1 for p in pods if is_terminating(p) and phase(p) not in ("Succeeded", "Failed"))
        if _normal(status) != _normal(old_status):
            await self._write_status(job, status)
        return min(requeue) if requeue else None

    async def _track_terminated(self, key: str, job: Obj, pods: list[Obj], status: Obj, stamp: str) -> None:
        """Counts finished pods exactly once (uncounted -> finalizer removed -> counted)."""
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        succeeded = list(uncounted.get("succeeded") or [])
        failed = list(uncounted.get("failed") or [])
        completions = (job.get("spec") or {}).get("completions")
        indexed = (job.get("spec") or {}).get("completionMode") == "Indexed"
        done = ju.parse_indexes(status.get("completedIndexes"), completions)
        release: list[Obj] = []
        for pod in pods:
            m = pod["metadata"]
            if ju.TRACKING_FINALIZER not in (m.get("finalizers") or ()) or not _terminal(pod):
                continue
            release.append(pod)
            if m["uid"] in succeeded or m["uid"] in failed:
                continue
            if phase(pod) == "Succeeded":
                index = ju.pod_index(pod)
                if indexed and (index is None or index in done):
                    continue  # a second success for an index (or no index) counts for nothing
                if indexed and index is not None:
                    done.add(index)
                succeeded.append(m["uid"])
                continue
            matched = ju.match_failure_policy(job, pod)
            if matched is not None and matched[0] == "Ignore":
                continue  # neither counted nor a reason to back off
            if matched is not None and matched[0] == "FailJob" and not get_condition(status, "FailureTarget"):
                set_condition(status, _condition("FailureTarget", "PodFailurePolicy", matched[1], stamp))
            failed.append(m["uid"])
            self._last_failure[key] = self.ctx.clock()
        if indexed:
            status["completedIndexes"] = ju.format_indexes(done)
        pending = {"succeeded": succeeded, "failed": failed}
        if pending != {"succeeded": list(uncounted.get("succeeded") or []), "failed": list(uncounted.get("failed") or [])}:
            # Record first, so a crash after removing finalizers loses no count.
            status["uncountedTerminatedPods"] = {k: v for k, v in pending.items() if v}
            await self._write_status(job, status)
        await self._release(release)
        status["succeeded"] = int(status.get("succeeded") or 0) + len(succeeded)
        status["failed"] = int(status.get("failed") or 0) + len(failed)
        status["uncountedTerminatedPods"] = {}

    async def _release(self, pods: list[Obj]) -> None:
        async def one(pod: Obj) -> None:
            m = pod["metadata"]
            rest = [f for f in m.get("finalizers") or () if f != ju.TRACKING_FINALIZER]
            try:
                await self.client.patch(PODS, m["name"], {"metadata": {"finalizers": rest or None}}, "merge", m["namespace"])
            except Exception as exc:
                if not is_not_found(exc):
                    raise

        await asyncio.gather(*(one(p) for p in pods))

    def _suspension(self, job: Obj, status: Obj, suspended: bool, stamp: str) -> None:
        cond = get_condition(status, "Suspended")
        if suspended and (cond is None or cond.get("status") != "True"):
            set_condition(status, _condition("Suspended", "JobSuspended", "Job suspended", stamp))
            self.recorder.event(job, NORMAL, "Suspended", "Job suspended")
        elif not suspended and cond is not None and cond.get("status") == "True":
            set_condition(status, {**_condition("Suspended", "JobResumed", "Job resumed", stamp), "status": "False"})
            status["startTime"] = stamp  # a resumed job's deadline counts from now
            self.recorder.event(job, NORMAL, "Resumed", "Job resumed")

    def _finish_target(self, job: Obj, status: Obj, active: list[Obj], now: float, requeue: list[float]) -> Obj | None:
        """The terminal condition the job is heading to (set as FailureTarget/SuccessCriteriaMet)."""
        for type_ in ("FailureTarget", "SuccessCriteriaMet"):
            cond = get_condition(status, type_)
            if cond is not None and cond.get("status") == "True":
                return cond
        spec = job.get("spec") or {}
        stamp = rfc3339(now)
        if spec.get("suspend"):
            return None
        restarts = sum(restart_count(p) for p in active) if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure" else 0
        reason = None
        if int(status.get("failed") or 0) + restarts > int(spec.get("backoffLimit", 6)):
            reason = "BackoffLimitExceeded"
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        if reason is None and deadline is not None and started is not None:
            left = started + int(deadline) - now
            if left <= 0:
                reason = "DeadlineExceeded"
            else:
                requeue.append(left)
        if reason is not None:
            cond = _condition("FailureTarget", reason, REASONS[reason], stamp)
            set_condition(status, cond)
            return cond
        succeeded = int(status.get("succeeded") or 0)
        completions = spec.get("completions")
        if completions is None:
            complete = succeeded > 0 and not active
        elif spec.get("completionMode") == "Indexed":
            complete = len(ju.parse_indexes(status.get("completedIndexes"), completions)) >= int(completions)
        else:
            complete = succeeded >= int(completions)
        if not complete:
            return None
        cond = _condition("SuccessCriteriaMet", "CompletionsReached", SUCCESS_MESSAGE, stamp)
        set_condition(status, cond)
        return cond

    def _finish(self, job: Obj, status: Obj, target: Obj, stamp: str) -> None:
        if target["type"] == "SuccessCriteriaMet":
            set_condition(status, _condition("Complete", target["reason"], target["message"], stamp))
            status["completionTime"] = stamp
            self.recorder.event(job, NORMAL, "Completed", "Job completed")
        else:
            set_condition(status, _condition("Failed", target["reason"], target["message"], stamp))
            self.recorder.event(job, WARNING, target["reason"], target["message"])

    async def _manage(self, key: str, job: Obj, status: Obj, active: list[Obj], now: float, requeue: list[float]) -> list[Obj]:
        """Creates or deletes pods so the right number run; returns the pods still active."""
        spec = job.get("spec") or {}
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        succeeded = int(status.get("succeeded") or 0)
        if spec.get("completionMode") == "Indexed" and completions is not None:
            done = ju.parse_indexes(status.get("completedIndexes"), completions)
            running = {ju.pod_index(p) for p in active}
            missing = [i for i in range(int(completions)) if i not in done and i not in running]
            want = min(parallelism, len(active) + len(missing))
        elif completions is None:
            want, missing = (len(active) if succeeded > 0 else parallelism), []
        else:
            want, missing = max(0, min(parallelism, int(completions) - succeeded)), []
        if len(active) > want:
            # Pending and unready pods go first, then the youngest.
            ranked = sorted(active, key=lambda p: (phase(p) != "Pending", is_ready(p), p["metadata"].get("creationTimestamp", "")), reverse=False)
            excess = ranked[: len(active) - want]
            await self._delete_pods(key, job, excess)
            return [p for p in active if p not in excess]
        create = want - len(active)
        if create <= 0:
            return active
        failures = int(status.get("failed") or 0)
        last = self._last_failure.get(key)
        if failures and last is not None:
            delay = min(self.backoff_base * 2 ** (failures - 1), BACKOFF_CAP) - (now - last)
            if delay > 0:
                requeue.append(delay)
                return active
        indexes: list[int | None] = list(missing[:create]) if missing else [None] * create
        await self._create_pods(key, job, indexes)
        return active

    def _new_pod(self, job: Obj, index: int | None) -> Obj:
        name = job["metadata"]["name"]
        template = (job.get("spec") or {}).get("template")
        pod = pod_from_template(template, job, f"{name}-{index}-" if index is not None else f"{name}-")
        meta = pod["metadata"]
        meta["finalizers"] = list(meta.get("finalizers") or []) + [ju.TRACKING_FINALIZER]
        if index is not None:
            meta.setdefault("annotations", {})[ju.COMPLETION_INDEX] = str(index)
            meta.setdefault("labels", {})[ju.COMPLETION_INDEX] = str(index)
            pod["spec"]["hostname"] = f"{name}-{index}"
            env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{ju.COMPLETION_INDEX}']"}}}
            for c in list(pod["spec"].get("initContainers") or []) + list(pod["spec"].get("containers") or []):
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in c.get("env") or ()):
                    c["env"] = list(c.get("env") or []) + [env]
        return pod

    async def _create_pods(self, key: str, job: Obj, indexes: list[int | None]) -> None:
        self.expectations.expect_creations(key, len(indexes))
        batch, start = 1, 0
        # Slow start like upstream: 1, 2, 4... so a broken template fails fast.
        while start < len(indexes):
            chunk = indexes[start : start + batch]
            results = await asyncio.gather(*(self._create_one(key, job, i) for i in chunk))
            start += len(chunk)
            if not all(results):
                self.expectations.lower_expectations(key, len(indexes) - start, 0)
                raise RuntimeError(f"job {key}: could not create all pods")
            batch *= 2

    async def _create_one(self, key: str, job: Obj, index: int | None) -> bool:
        try:
            pod = await self.client.create(PODS, self._new_pod(job, index), job["metadata"]["namespace"])
        except Exception as exc:  # noqa: BLE001 - reported as an event, retried with backoff
            self.expectations.creation_observed(key)
            self.recorder.event(job, WARNING, "FailedCreate", f"Error creating: {exc}")
            return False
        self.recorder.event(job, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return True

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        if not pods:
            return
        self.expectations.expect_deletions(key, len(pods))

        async def one(pod: Obj) -> None:
            m = pod["metadata"]
            try:
                await self.client.delete(PODS, m["name"], m["namespace"], preconditions={"uid": m["uid"]})
                self.recorder.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {m['name']}")
            except Exception as exc:
                self.expectations.deletion_observed(key)
                if not is_not_found(exc):
                    raise

        await asyncio.gather(*(one(p) for p in pods))

    async def _write_status(self, job: Obj, status: Obj) -> None:
        body = {**job, "status": status}
        try:
            written = await self.client.update(JOBS, body, subresource="status")
        except Exception as exc:
            if not is_not_found(exc):
                raise
            return
        # A second write in the same pass must not conflict with the first (never mutate the cache).
        job["metadata"] = {**job["metadata"], "resourceVersion": written["metadata"]["resourceVersion"]}

"""pods/eviction: delete a pod unless that would violate its PodDisruptionBudget.

As upstream: a pod that is pending, finished or already being deleted is always evicted;
a pod no budget selects is evicted; more than one budget is an error. Otherwise the budget's
``status.disruptionsAllowed`` is checked and decremented in one compare-and-swap write of the
budget's status, which also records the pod in ``status.disruptedPods`` so the disruption
controller does not count it healthy meanwhile; no disruptions left answers 429 TooManyRequests
(``kubectl drain`` retries). An unready pod may be evicted without spending the budget when the
budget is healthy (``unhealthyPodEvictionPolicy: IfHealthyBudget``, the default) or always
(``AlwaysAllow``). The pod gets the DisruptionTarget condition before it is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sampan.api import errors
from sampan.api.selectors import SelectorError, label_selector_from_dict
from sampan.registry.meta import Obj, meta, timestamp
from sampan.registry.options import DeleteOptions, ListOptions, WriteOptions
from sampan.registry.store import ResourceStore

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MAX_DISRUPTED_PODS = 2000
ATTEMPTS = 8
PDB_GR = errors.GroupResource("policy", "poddisruptionbudget")


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _can_ignore_budget(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(meta(pod).get("deletionTimestamp"))


async def _budgets(rs: ResourceStore, pod: Obj) -> list[Obj]:
    pdbs = rs.registry.resource("policy", "v1", "poddisruptionbudgets")
    if pdbs is None:
        return []
    labels = meta(pod).get("labels") or {}
    found = []
    for pdb in (await pdbs.list(meta(pod)["namespace"], ListOptions()))["items"]:
        try:
            selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            continue  # an invalid selector selects nothing
        if selector.matches(labels):
            found.append(pdb)
    return found


def _too_many(message: str, retry_after: int = 0) -> errors.APIError:
    err = errors.too_many_requests(VIOLATION, retry_after)
    err.status["details"] = {**(err.status.get("details") or {}), "causes": [
        {"reason": "DisruptionBudget", "message": message}]}
    return err


def set_disruption_allowed(status: Obj, allowed: bool, reason: str = "", message: str = "") -> None:
    """Sets the budget's DisruptionAllowed condition (upstream's metav1.Condition rules: the
    transition time moves only when the status flips)."""
    cond = {
        "type": "DisruptionAllowed",
        "status": "True" if allowed else "False",
        "observedGeneration": int(status.get("observedGeneration") or 0),
        "lastTransitionTime": timestamp(),
        "reason": reason or ("SufficientPods" if allowed else "InsufficientPods"),
        "message": message,
    }
    conditions = list(status.get("conditions") or [])
    for i, old in enumerate(conditions):
        if old.get("type") == "DisruptionAllowed":
            if old.get("status") == cond["status"] and old.get("lastTransitionTime"):
                cond["lastTransitionTime"] = old["lastTransitionTime"]
            conditions[i] = cond
            break
    else:
        conditions.append(cond)
    status["conditions"] = conditions


async def _spend(rs: ResourceStore, pdb: Obj, pod_name: str, opts: WriteOptions) -> None:
    """Takes one disruption from the budget, atomically, or raises why not."""
    pdbs = rs.registry.must("policy", "v1", "poddisruptionbudgets")
    name = meta(pdb)["name"]

    def mutate(live: Obj) -> Obj:
        status = live.setdefault("status", {})
        if int(status.get("observedGeneration") or 0) < int(meta(live).get("generation") or 0):
            raise _too_many(f"The disruption budget {name} is still being processed by the server.", 10)
        allowed = int(status.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise errors.forbidden(PDB_GR, name, "pdb disruptions allowed is negative")
        if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
            why = "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
            raise errors.forbidden(PDB_GR, name, why)
        if allowed == 0:
            raise _too_many(
                f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy pods "
                f"and has {status.get('currentHealthy', 0)} currently"
            )
        status["disruptionsAllowed"] = allowed - 1
        if allowed - 1 == 0:
            set_disruption_allowed(status, False)
        disrupted = dict(status.get("disruptedPods") or {})
        disrupted[pod_name] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status["disruptedPods"] = disrupted
        return live

    await pdbs.write(meta(pdb)["namespace"], name, mutate, opts, "status")


async def _mark_disruption_target(rs: ResourceStore, pod: Obj, opts: WriteOptions, expected_rv: str | None) -> Obj:
    m = meta(pod)

    def mutate(live: Obj) -> Obj:
        if meta(live).get("uid") != m.get("uid"):
            raise errors.conflict(rs.gr, m["name"], "the pod was replaced")
        if expected_rv and meta(live).get("resourceVersion") != expected_rv:
            raise errors.conflict(rs.gr, m["name"])
        status = live.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        conditions.append({
            "type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp(),
            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
        })
        status["conditions"] = conditions
        return live

    return await rs.write(m["namespace"], m["name"], mutate, opts, "status")


async def _delete(rs: ResourceStore, pod: Obj, options: DeleteOptions, opts: WriteOptions) -> Obj:
    m = meta(pod)
    if options.precondition_uid is None:
        options.precondition_uid = m.get("uid")
    phase = (pod.get("status") or {}).get("phase")
    if not options.dry_run and not m.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        marked = await _mark_disruption_target(rs, pod, opts, options.precondition_resource_version)
        if options.precondition_resource_version:
            options.precondition_resource_version = meta(marked).get("resourceVersion")
    await rs.delete(m["namespace"], m["name"], options)
    return errors.status_success()


async def evict_pod(rs: ResourceStore, namespace: str, name: str, eviction: Obj, opts: WriteOptions) -> Obj:
    body_options: Any = eviction.get("deleteOptions") or {}
    for _ in range(ATTEMPTS):
        options = DeleteOptions.from_dict(body_options if isinstance(body_options, dict) else {})
        options.dry_run = options.dry_run or opts.dry_run
        pod = await rs.get(namespace, name)
        if _can_ignore_budget(pod):
            return await _delete(rs, pod, options, opts)
        budgets = await _budgets(rs, pod)
        if not budgets:
            return await _delete(rs, pod, options, opts)
        if len(budgets) > 1:
            raise errors.internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
            )
        pdb = budgets[0]
        if not _ready(pod):
            status, spec = pdb.get("status") or {}, pdb.get("spec") or {}
            policy = spec.get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
            healthy_budget = int(status.get("currentHealthy") or 0) >= int(status.get("desiredHealthy") or 0) > 0
            if policy == "AlwaysAllow" or healthy_budget:
                # The pod counts as unhealthy only as long as it stays as it is.
                options.precondition_resource_version = options.precondition_resource_version or meta(pod).get(
                    "resourceVersion"
                )
                try:
                    return await _delete(rs, pod, options, opts)
                except errors.APIError as exc:
                    if exc.code == 409:
                        continue
                    raise
        try:
            await _spend(rs, pdb, name, WriteOptions(dry_run=options.dry_run, field_manager=opts.field_manager))
        except errors.APIError as exc:
            if exc.code == 409:
                continue
            raise
        return await _delete(rs, pod, options, opts)
    raise errors.too_many_requests("Couldn't evict the pod: too many concurrent changes; try again", 1)

"""Disruption controller: keeps each PodDisruptionBudget's status (how many selected pods are
healthy, how many must be, how many may be disrupted now) for the eviction subresource.

As upstream: ``minAvailable: N`` needs N healthy pods out of the pods selected;
``maxUnavailable`` and a percentage ``minAvailable`` are resolved against the scale of the
pods' controllers (Deployment through its ReplicaSet, ReplicaSet, ReplicationController,
StatefulSet; rounding up). Pods that are being deleted, or that an eviction recorded in
``status.disruptedPods`` less than two minutes ago, are not counted healthy. A budget whose
expected pod count cannot be worked out allows no disruptions (condition reason SyncFailed).
"""

from __future__ import annotations

from typing import Any

from sampan.api.selectors import SelectorError, label_selector_from_dict
from sampan.client.events import NORMAL, WARNING
from sampan.client.interface import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    Obj,
    ResourceRef,
    is_conflict,
    is_not_found,
    object_key,
)
from sampan.controllers.base import Controller, controller_owner, register
from sampan.controllers.util.conditions import parse_time
from sampan.controllers.util.discovery import served_resources
from sampan.controllers.util.intstr import IntOrPercentError, scaled_value
from sampan.controllers.util.pods import is_ready
from sampan.registry.eviction import set_disruption_allowed

PDBS = ResourceRef("policy", "v1", "poddisruptionbudgets")
REPLICATIONCONTROLLERS = ResourceRef("", "v1", "replicationcontrollers")
# An eviction that has not led to a deletion after this long is forgotten.
DELETION_TIMEOUT = 120.0
CONFLICT_RETRY = 0.1


class ScaleError(Exception):
    pass


def _selector(pdb: Obj) -> Any:
    return label_selector_from_dict((pdb.get("spec") or {}).get("selector"))


def _replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


@register
class DisruptionController(Controller):
    name = "disruption"
    component = "controllermanager"
    workers = 2

    def setup(self) -> None:
        self.pdbs = self.watch(PDBS)
        self.pods = self.informer(PODS)
        self.pods.add_handler(
            on_add=self._pod_changed,
            on_update=lambda old, new: (self._pod_changed(old), self._pod_changed(new)),
            on_delete=self._pod_changed,
        )
        # The controllers whose scale counts (upstream's finders), where the server serves them.
        served = {(s.ref.group, s.ref.plural) for s in served_resources(self.client)}
        self.owners = {
            (ref.group, kind): self.informer(ref)
            for kind, ref in (
                ("ReplicationController", REPLICATIONCONTROLLERS),
                ("ReplicaSet", REPLICASETS),
                ("Deployment", DEPLOYMENTS),
                ("StatefulSet", STATEFULSETS),
            )
            if not served or (ref.group, ref.plural) in served
        }

    def _pod_changed(self, pod: Obj) -> None:
        m = pod.get("metadata") or {}
        labels = m.get("labels") or {}
        for pdb in self.pdbs.list(m.get("namespace")):
            try:
                if _selector(pdb).matches(labels):
                    self.queue.add(object_key(pdb))
            except SelectorError:
                continue

    # -- how many pods there should be ------------------------------------------------
    def _owner(self, group: str, kind: str, namespace: str, ref: Obj) -> Obj | None:
        informer = self.owners.get((group, kind))
        found = informer.get_by_name(ref.get("name", ""), namespace) if informer else None
        if found is None or found["metadata"].get("uid") != ref.get("uid"):
            return None
        return found

    def _controller_scale(self, pod: Obj, ref: Obj) -> tuple[str, int] | None:
        """(controller uid, its scale) for the pod's controller, as upstream's finders do."""
        ns = pod["metadata"]["namespace"]
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        kind = ref.get("kind", "")
        if (group, kind) == ("apps", "ReplicaSet"):
            rs = self._owner("apps", "ReplicaSet", ns, ref)
            if rs is None:
                return None
            owner = controller_owner(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                deployment = self._owner("apps", "Deployment", ns, owner)
                if deployment is not None:
                    return deployment["metadata"]["uid"], _replicas(deployment)
                return None
            return rs["metadata"]["uid"], _replicas(rs)
        if (group, kind) in self.owners:
            found = self._owner(group, kind, ns, ref)
            return (found["metadata"]["uid"], _replicas(found)) if found is not None else None
        return None

    def _expected_scale(self, pods: list[Obj]) -> tuple[int, list[str]]:
        scales: dict[str, int] = {}  # by the uid of the controller whose scale counts
        seen: set[str] = set()  # owner uids already looked up
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_owner(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in seen:
                continue
            found = self._controller_scale(pod, ref)
            if found is None:
                raise ScaleError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            seen.add(ref.get("uid", ""))
            scales[found[0]] = found[1]
        return sum(scales.values()), unmanaged

    def _expectations(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int, list[str]]:
        """(expected pods, desired healthy, unmanaged pod names)."""
        spec = pdb.get("spec") or {}
        unmanaged: list[str] = []
        expected = desired = 0
        try:
            if spec.get("maxUnavailable") is not None:
                expected, unmanaged = self._expected_scale(pods)
                desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected, True))
            elif spec.get("minAvailable") is not None:
                if isinstance(spec["minAvailable"], int):
                    desired, expected = spec["minAvailable"], len(pods)
                else:
                    expected, unmanaged = self._expected_scale(pods)
                    desired = scaled_value(spec["minAvailable"], expected, True)
        except IntOrPercentError as exc:
            raise ScaleError(str(exc)) from None
        return expected, desired, unmanaged

    # -- reconcile ------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        try:
            return await self._reconcile(key)
        except Exception as exc:
            if not is_conflict(exc):
                raise
            return CONFLICT_RETRY  # an eviction spent the budget first; recompute from its write

    async def _reconcile(self, key: str) -> float | None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return None
        m = pdb["metadata"]
        try:
            selector = _selector(pdb)
        except SelectorError as exc:
            await self._fail_safe(pdb, str(exc))
            return None
        pods = [p for p in self.pods.list(m["namespace"]) if selector.matches(p["metadata"].get("labels") or {})]
        if not pods:
            self.recorder.event(pdb, NORMAL, "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = self._expectations(pdb, pods)
        except ScaleError as exc:
            self.recorder.event(pdb, WARNING, "CalculateExpectedPodCountFailed",
                                f"Failed to calculate the number of expected pods: {exc}")
            await self._fail_safe(pdb, str(exc))
            return None
        if unmanaged:
            self.recorder.event(pdb, WARNING, "UnmanagedPods", (
                f"Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. "
                "As a result, the status of the PDB cannot be calculated correctly, which may result in undefined "
                'behavior. To account for these pods please set ".spec.minAvailable" field of the PDB to an '
                "integer value."))
        now = self.ctx.clock()
        disrupted, recheck = self._disrupted_pods(pdb, pods, now)
        healthy = sum(1 for p in pods if _counts_healthy(p, disrupted, now))
        await self._update_status(pdb, healthy, desired, expected, disrupted)
        return None if recheck is None else max(0.01, recheck - now)

    def _disrupted_pods(self, pdb: Obj, pods: list[Obj], now: float) -> tuple[dict[str, str], float | None]:
        """Evictions still expected to turn into deletions, and when the first one runs out."""
        recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
        kept: dict[str, str] = {}
        recheck: float | None = None
        for pod in pods:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp") or name not in recorded:
                continue
            expires = (parse_time(recorded[name]) or 0.0) + DELETION_TIMEOUT
            if expires < now:
                self.recorder.event(pod, WARNING, "NotDeleted", (
                    f"Pod was expected by PDB {pdb['metadata']['namespace']}/{pdb['metadata']['name']} "
                    "to be deleted but it wasn't"))
                continue
            kept[name] = recorded[name]
            recheck = expires if recheck is None else min(recheck, expires)
        return kept, recheck

    async def _update_status(
        self, pdb: Obj, healthy: int, desired: int, expected: int, disrupted: dict[str, str]
    ) -> None:
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        generation = int(pdb["metadata"].get("generation") or 0)
        old = pdb.get("status") or {}
        status = {k: v for k, v in old.items() if k == "conditions"}
        status.update(currentHealthy=healthy, desiredHealthy=desired, expectedPods=expected,
                      disruptionsAllowed=allowed, observedGeneration=generation)
        if disrupted:
            status["disruptedPods"] = disrupted
        set_disruption_allowed(status, allowed > 0)
        if _same_status(old, status):
            return
        await self._write(pdb, status)

    async def _fail_safe(self, pdb: Obj, message: str) -> None:
        status = dict(pdb.get("status") or {})
        status["disruptionsAllowed"] = 0
        set_disruption_allowed(status, False, "SyncFailed", message)
        if not _same_status(pdb.get("status") or {}, status):
            await self._write(pdb, status)

    async def _write(self, pdb: Obj, status: Obj) -> None:
        body = {**pdb, "status": status}
        try:
            # A full update with the cached resourceVersion: an eviction that got in first wins.
            await self.client.update(PDBS, body, subresource="status")
        except Exception as exc:
            if not is_not_found(exc):
                raise


def _counts_healthy(pod: Obj, disrupted: dict[str, str], now: float) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    since = disrupted.get(pod["metadata"]["name"])
    if since is not None and (parse_time(since) or 0.0) + DELETION_TIMEOUT > now:
        return False
    return is_ready(pod)


def _same_status(old: Obj, new: Obj) -> bool:
    def strip(status: Obj) -> Obj:
        out = {k: v for k, v in status.items() if k != "conditions"}
        out["disruptedPods"] = status.get("disruptedPods") or {}
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                             for c in status.get("conditions") or []]
        return out

    return strip(old) == strip(new)


"""StatefulSet controller: pods with stable names ``<set>-<ordinal>``, one PVC per claim
template and ordinal, ordered (OrderedReady) or parallel creation and removal, and rolling
updates from the highest ordinal down to the partition, tracked with ControllerRevisions."""

from __future__ import annotations

import asyncio
import copy
import logging
import re

from sampan.api.selectors import LabelSelector
from sampan.client.events import NORMAL, WARNING
from sampan.client.interface import (
    CONTROLLERREVISIONS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    STATEFULSETS,
    Obj,
    is_not_found,
)
from sampan.controllers.base import Controller, controller_owner, register
from sampan.controllers.util.writes import status_patch, typed
from sampan.controllers.util import revisions as rev
from sampan.controllers.util.claim import Claimer, SelectorCache, candidates, index_for_claims
from sampan.controllers.util.pods import (
    is_available,
    is_ready,
    is_terminating,
    phase,
    pod_from_template,
    seconds_until_available,
)

log = logging.getLogger(__name__)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


def ordinal_of(set_name: str, pod: Obj) -> int | None:
    match = _ORDINAL.match(pod["metadata"].get("name", ""))
    if match is None or match.group(1) != set_name:
        return None
    return int(match.group(2))


def claim_name(template: Obj, set_name: str, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{set_name}-{ordinal}"


def running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_ready(pod)


def healthy(pod: Obj) -> bool:
    return running_and_ready(pod) and not is_terminating(pod)


def pod_revision(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(rev.HASH_LABEL, "")


@register
class StatefulSetController(Controller):
    name = "statefulset"
    component = "statefulset-controller"
    workers = 4

    def setup(self) -> None:
        self._selectors = SelectorCache()
        self.sets = self.watch(STATEFULSETS)
        self.pods = self.informer(PODS)
        index_for_claims(self.pods)
        self.pods.add_handler(self._pod_changed, lambda old, new: self._pod_updated(old, new), self._pod_changed)
        self.revisions = self.informer(CONTROLLERREVISIONS)
        index_for_claims(self.revisions)

    def selector(self, sts: Obj) -> LabelSelector:
        return self._selectors.get(sts)

    def _pod_changed(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        ref = controller_owner(pod)
        if ref is not None:
            if ref.get("kind") == "StatefulSet":
                self.queue.add(f"{ns}/{ref.get('name')}")
            return
        for sts in self.sets.list(ns):
            if self.selector(sts).matches(pod["metadata"].get("labels")):
                self.enqueue(sts)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if controller_owner(old) != controller_owner(new):
            self._pod_changed(old)
        self._pod_changed(new)

    # -- reconcile -------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        cached = self.sets.get(key)
        if cached is None or cached["metadata"].get("deletionTimestamp"):
            return None
        sts = copy.deepcopy(typed(cached, "apps/v1", "StatefulSet"))
        name = sts["metadata"]["name"]
        selector = self.selector(sts)
        pods = await Claimer(
            self.client, PODS, sts, STATEFULSETS, selector, lambda p: ordinal_of(name, p) is not None
        ).claim(candidates(self.pods, sts))
        owned = await Claimer(self.client, CONTROLLERREVISIONS, sts, STATEFULSETS, selector).claim(
            candidates(self.revisions, sts)
        )
        update, history, collisions = await rev.sync_revisions(self.client, sts, owned)
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in history if r["metadata"]["name"] == current_name), update)
        sync = _Sync(self, sts, current, update, pods)
        try:
            await sync.run()
        finally:
            await self.update_status(sts, sync, collisions)
        live = {current["metadata"]["name"], update["metadata"]["name"]} | {pod_revision(p) for p in pods}
        await rev.truncate_history(self.client, sts, history, live)
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.ctx.clock()
        waits = [w for p in pods if (w := seconds_until_available(p, min_ready, now)) is not None]
        return min(waits) + 0.1 if waits else None

    async def update_status(self, sts: Obj, sync: _Sync, collisions: int) -> None:
        old: Obj = sts.get("status") or {}
        status: Obj = dict(sync.counts)
        status["observedGeneration"] = sts["metadata"].get("generation", 0)
        status["currentRevision"] = sync.current["metadata"]["name"]
        status["updateRevision"] = sync.update["metadata"]["name"]
        status["collisionCount"] = collisions
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if (
            strategy.get("type", "RollingUpdate") == "RollingUpdate"
            and status["updatedReplicas"] == status["replicas"]
            and status["readyReplicas"] == status["replicas"]
        ):
            # The rollout is done: the update revision becomes the current one.
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = status["updateRevision"]
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if all(old.get(k) == v for k, v in status.items()) and set(old) <= set(status):
            return
        meta = sts["metadata"]
        try:
            await self.client.patch(
                STATEFULSETS, meta["name"], status_patch(old, status), "merge", meta.get("namespace"), subresource="status"
            )
        except Exception as exc:
            if not is_not_found(exc):
                raise

    # -- pods and claims ---------------------------------------------------------------------
    def new_pod(self, sts: Obj, revision: Obj, ordinal: int) -> Obj:
        name = sts["metadata"]["name"]
        spec = sts.get("spec") or {}
        pod = pod_from_template(rev.template_of(revision), sts, name=f"{name}-{ordinal}")
        labels = pod["metadata"].setdefault("labels", {})
        labels[POD_NAME_LABEL] = pod["metadata"]["name"]
        labels[POD_INDEX_LABEL] = str(ordinal)
        labels[rev.HASH_LABEL] = revision["metadata"]["name"]
        pod["spec"]["hostname"] = pod["metadata"]["name"]
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        volumes = [v for v in pod["spec"].get("volumes") or []]
        for template in spec.get("volumeClaimTemplates") or []:
            vol = {"name": template["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name(template, name, ordinal)}}
            volumes = [v for v in volumes if v.get("name") != vol["name"]] + [vol]
        if volumes:
            pod["spec"]["volumes"] = volumes
        return pod

    async def create_claims(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        spec = sts.get("spec") or {}
        name, ns = sts["metadata"]["name"], sts["metadata"].get("namespace")
        when_deleted = (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted", "Retain")
        match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
        for template in spec.get("volumeClaimTemplates") or []:
            claim = copy.deepcopy(template)
            claim.pop("status", None)
            meta = claim.setdefault("metadata", {})
            meta["name"] = claim_name(template, name, ordinal)
            meta["namespace"] = ns
            meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
            for field in ("uid", "resourceVersion", "creationTimestamp"):
                meta.pop(field, None)
            if when_deleted == "Delete":
                # The garbage collector removes the claim with its StatefulSet.
                ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": sts["metadata"]["uid"]}
                meta["ownerReferences"] = [ref]
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, claim, ns)
            except Exception as exc:
                if getattr(exc, "code", 0) == 409:
                    continue
                msg = f"create Claim {meta['name']} for Pod {pod['metadata']['name']} in StatefulSet {name} failed error: {exc}"
                self.recorder.event(sts, WARNING, "FailedCreate", msg)
                raise
            msg = f"create Claim {meta['name']} Pod {pod['metadata']['name']} in StatefulSet {name} success"
            self.recorder.event(sts, NORMAL, "SuccessfulCreate", msg)

    async def release_claims_on_scale_down(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        """whenScaled: Delete hands each claim of a removed ordinal to its pod, so the garbage
        collector deletes the claim after the pod."""
        spec = sts.get("spec") or {}
        if (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled", "Retain") != "Delete":
            return
        ref = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        for template in spec.get("volumeClaimTemplates") or []:
            cname = claim_name(template, sts["metadata"]["name"], ordinal)
            patch = {"metadata": {"ownerReferences": [ref]}}
            try:
                await self.client.patch(PERSISTENTVOLUMECLAIMS, cname, patch, "strategic", sts["metadata"].get("namespace"))
            except Exception as exc:
                if not is_not_found(exc):
                    raise

    async def create_pod(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        name = sts["metadata"]["name"]
        await self.create_claims(sts, pod, ordinal)
        try:
            await self.client.create(PODS, pod, sts["metadata"].get("namespace"))
        except Exception as exc:
            if getattr(exc, "code", 0) == 409:
                return  # our cache was behind; the pod is there
            msg = f"create Pod {pod['metadata']['name']} in StatefulSet {name} failed error: {exc}"
            self.recorder.event(sts, WARNING, "FailedCreate", msg)
            raise
        self.recorder.event(sts, NORMAL, "SuccessfulCreate", f"create Pod {pod['metadata']['name']} in StatefulSet {name} successful")

    async def delete_pod(self, sts: Obj, pod: Obj) -> None:
        name = sts["metadata"]["name"]
        try:
            await self.client.delete(PODS, pod["metadata"]["name"], pod["metadata"].get("namespace"))
        except Exception as exc:
            if is_not_found(exc):
                return
            msg = f"delete Pod {pod['metadata']['name']} in StatefulSet {name} failed error: {exc}"
            self.recorder.event(sts, WARNING, "FailedDelete", msg)
            raise
        self.recorder.event(sts, NORMAL, "SuccessfulDelete", f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful")


class _Sync:
    """One pass over a StatefulSet's pods (upstream's updateStatefulSet)."""

    def __init__(self, ctrl: StatefulSetController, sts: Obj, current: Obj, update: Obj, pods: list[Obj]) -> None:
        self.ctrl = ctrl
        self.sts = sts
        self.current = current
        self.update = update
        self.pods = pods
        self.spec: Obj = sts.get("spec") or {}
        self.start = int((self.spec.get("ordinals") or {}).get("start") or 0)
        self.replicas = int(self.spec.get("replicas", 1))
        self.ordered = self.spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        strategy = self.spec.get("updateStrategy") or {}
        self.rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        self.partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0) if self.rolling else 0
        self.counts: dict[str, int] = {}
        self._count()

    def _count(self) -> None:
        min_ready = int(self.spec.get("minReadySeconds") or 0)
        now = self.ctrl.ctx.clock()
        c = dict.fromkeys(("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"), 0)
        for pod in self.pods:
            c["replicas"] += 1
            if running_and_ready(pod):
                c["readyReplicas"] += 1
                if is_available(pod, min_ready, now):
                    c["availableReplicas"] += 1
            if phase(pod) and not is_terminating(pod):
                revision = pod_revision(pod)
                c["currentReplicas"] += revision == self.current["metadata"]["name"]
                c["updatedReplicas"] += revision == self.update["metadata"]["name"]
        self.counts = c

    def _revision_for(self, ordinal: int) -> Obj:
        """Below the partition new pods get the current revision, the rest the update revision."""
        if self.rolling and ordinal < self.start + self.partition:
            return self.current
        return self.update

    async def run(self) -> None:
        name = self.sts["metadata"]["name"]
        replicas: list[Obj | None] = [None] * self.replicas
        condemned: list[tuple[int, Obj]] = []
        for pod in self.pods:
            ordinal = ordinal_of(name, pod)
            if ordinal is None:
                continue
            if self.start <= ordinal < self.start + self.replicas:
                replicas[ordinal - self.start] = pod
            else:
                condemned.append((ordinal, pod))
        condemned.sort(key=lambda item: item[0])
        if not await self._replicas(replicas):
            return
        if not await self._condemned(condemned, replicas):
            return
        if self.rolling:
            await self._roll(replicas)

    async def _replicas(self, replicas: list[Obj | None]) -> bool:
        """Create missing pods and replace finished ones; False when OrderedReady must wait."""
        missing: list[int] = []
        for i, pod in enumerate(replicas):
            ordinal = self.start + i
            if pod is not None and phase(pod) in ("Failed", "Succeeded"):
                if not is_terminating(pod):
                    await self.ctrl.delete_pod(self.sts, pod)
                if self.ordered:
                    return False
                continue
            if pod is None:
                if self.ordered:
                    await self._create(ordinal)
                    return False
                missing.append(ordinal)
                continue
            if self.ordered and (is_terminating(pod) or not running_and_ready(pod)):
                return False  # wait for this ordinal before touching the next
            if self.ordered and not is_available(pod, int(self.spec.get("minReadySeconds") or 0), self.ctrl.ctx.clock()):
                return False
        if missing:
            results = await asyncio.gather(*(self._create(o) for o in missing), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]
        return True

    async def _create(self, ordinal: int) -> None:
        revision = self._revision_for(ordinal)
        pod = self.ctrl.new_pod(self.sts, revision, ordinal)
        await self.ctrl.create_pod(self.sts, pod, ordinal)
        self.counts["replicas"] += 1
        self.counts["currentReplicas"] += revision is self.current
        self.counts["updatedReplicas"] += revision is self.update

    async def _condemned(self, condemned: list[tuple[int, Obj]], replicas: list[Obj | None]) -> bool:
        """Remove pods beyond the replica count, highest ordinal first."""
        unhealthy: Obj | None = None
        if self.ordered:
            unhealthy = next((p for p in replicas if p is not None and not healthy(p)), None)
            if unhealthy is None:
                unhealthy = next((p for _, p in condemned if not healthy(p)), None)
        for ordinal, pod in reversed(condemned):
            if is_terminating(pod):
                if self.ordered:
                    return False
                continue
            if self.ordered and not healthy(pod) and pod is not unhealthy:
                return False  # wait for a predecessor to recover first
            await self.ctrl.release_claims_on_scale_down(self.sts, pod, ordinal)
            await self.ctrl.delete_pod(self.sts, pod)
            if self.ordered:
                return False
        return True

    async def _roll(self, replicas: list[Obj | None]) -> None:
        """Replace the highest-ordinal pod not at the update revision, one at a time."""
        update_name = self.update["metadata"]["name"]
        for i in range(len(replicas) - 1, self.partition - 1, -1):
            pod = replicas[i]
            if pod is None:
                return
            if pod_revision(pod) != update_name and not is_terminating(pod):
                await self.ctrl.delete_pod(self.sts, pod)
                self.counts["currentReplicas"] -= 1
                return
            if not healthy(pod):
                return


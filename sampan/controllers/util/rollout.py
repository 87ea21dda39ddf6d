"""One Deployment sync (upstream's sync.go, rolling.go, recreate.go and progress.go): find or
create the new ReplicaSet, move replicas between ReplicaSets, and compute status/conditions."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from sampan.client.interface import is_not_found
from sampan.controllers.util import deployments as du
from sampan.controllers.util.conditions import get_condition, new_condition, parse_time, remove_condition, set_condition
from sampan.controllers.util.pods import controller_ref, is_owned_by

if TYPE_CHECKING:
    from sampan.controllers.deployment import DeploymentController

Obj = dict[str, Any]


def _active(sets: list[Obj | None]) -> list[Obj]:
    return [rs for rs in sets if rs is not None and du.replicas(rs) > 0]


class Rollout:
    def __init__(self, ctrl: DeploymentController, d: Obj, sets: list[Obj]) -> None:
        self.ctrl = ctrl
        self.d = d
        self.sets = sets
        self.now = ctrl.ctx.clock()

    # -- the new ReplicaSet and revisions -----------------------------------------------------
    async def get_all(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        new_rs = du.find_new(self.d, self.sets)
        old = [rs for rs in self.sets if rs is not new_rs]
        new_revision = max((du.revision(rs) for rs in old), default=0) + 1
        if new_rs is not None:
            new_rs = await self._refresh_new(new_rs, new_revision)
        elif create:
            new_rs = await self._create_new(old, new_revision)
        return new_rs, old

    async def _refresh_new(self, rs: Obj, new_revision: int) -> Obj:
        d = self.d
        ann = dict(rs["metadata"].get("annotations") or {})
        patch: Obj = {}
        if du.new_rs_annotations(d, ann, new_revision, exists=True):
            patch["metadata"] = {"annotations": ann}
        min_ready = du.spec(d).get("minReadySeconds") or 0
        if (du.spec(rs).get("minReadySeconds") or 0) != min_ready:
            patch["spec"] = {"minReadySeconds": min_ready}
        if patch:
            rs = await self.ctrl.patch_rs(rs, patch)
            self._replace(rs)
        await self.ctrl.set_revision(d, ann.get(du.REVISION, str(new_revision)))
        status = d.setdefault("status", {})
        if du.has_progress_deadline(d) and get_condition(status, "Progressing") is None:
            msg = f'Found new replica set "{rs["metadata"]["name"]}"'
            before = copy.deepcopy(status)
            set_condition(status, new_condition("Progressing", "True", du.FOUND_NEW_RS, msg, self.now, True))
            await self.ctrl.write_status(d, status, before)
        return rs

    async def _create_new(self, old: list[Obj], new_revision: int) -> Obj:
        d = self.d
        meta = d["metadata"]
        h = du.pod_template_hash(d)
        template = copy.deepcopy(du.spec(d).get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[du.HASH_LABEL] = h
        selector = copy.deepcopy(du.spec(d).get("selector") or {})
        selector.setdefault("matchLabels", {})[du.HASH_LABEL] = h
        ann: dict[str, str] = {}
        du.new_rs_annotations(d, ann, new_revision, exists=False)
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{h}",
                "namespace": meta.get("namespace"),
                "labels": dict(template["metadata"]["labels"]),
                "annotations": ann,
                "ownerReferences": [controller_ref(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": du.spec(d).get("minReadySeconds") or 0,
                "selector": selector,
                "template": template,
            },
        }
        rs["spec"]["replicas"] = du.new_rs_replicas(d, [*old, rs], rs)
        status = d.setdefault("status", {})
        try:
            created = await self.ctrl.create_rs(rs)
        except Exception as exc:
            if getattr(exc, "code", 0) == 409:
                return await self._on_collision(rs)
            if du.has_progress_deadline(d):
                msg = f'Failed to create new replica set "{rs["metadata"]["name"]}": {exc}'
                before = copy.deepcopy(status)
                set_condition(status, new_condition("Progressing", "False", du.FAILED_RS_CREATE, msg, self.now, True))
                await self.ctrl.write_status(d, status, before)
            raise
        replicas = du.replicas(created)
        if replicas > 0:
            self.ctrl.scaled_event(d, created, 0, replicas)
        self.sets.append(created)
        await self.ctrl.set_revision(d, str(new_revision))
        if du.has_progress_deadline(d):
            msg = f'Created new replica set "{created["metadata"]["name"]}"'
            before = copy.deepcopy(status)
            set_condition(status, new_condition("Progressing", "True", du.NEW_RS_CREATED, msg, self.now, True))
            await self.ctrl.write_status(d, status, before)
        return created

    async def _on_collision(self, rs: Obj) -> Obj:
        """A ReplicaSet of that name exists: ours with our template is fine, else bump collisionCount."""
        d = self.d
        try:
            existing = await self.ctrl.get_rs(rs["metadata"]["name"], rs["metadata"]["namespace"])
        except Exception as exc:
            if is_not_found(exc):
                raise RuntimeError("replica set vanished after a name collision; retrying") from exc
            raise
        if is_owned_by(existing, d) and du.equal_ignore_hash(du.spec(existing).get("template"), du.spec(d).get("template")):
            self.sets.append(existing)
            return existing
        status = d.setdefault("status", {})
        before = copy.deepcopy(status)
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.ctrl.write_status(d, status, before)
        raise RuntimeError(f"hash collision for replica set {rs['metadata']['name']}; collisionCount is now {status['collisionCount']}")

    def _replace(self, rs: Obj) -> None:
        uid = rs["metadata"]["uid"]
        self.sets = [rs if s["metadata"]["uid"] == uid else s for s in self.sets]

    # -- scaling ---------------------------------------------------------------------------------
    async def scale_rs(self, rs: Obj, size: int, only_if_resized: bool = True) -> tuple[bool, Obj]:
        d = self.d
        resized = du.replicas(rs) != size
        if only_if_resized and not resized:
            return False, rs
        ann = du.replicas_annotations_changed(rs, du.replicas(d), du.replicas(d) + du.max_surge(d))
        if not resized and ann is None:
            return False, rs
        patch: Obj = {"spec": {"replicas": size}}
        if ann:
            patch["metadata"] = {"annotations": ann}
        old = du.replicas(rs)
        rs = await self.ctrl.patch_rs(rs, patch)
        self._replace(rs)
        if resized:
            self.ctrl.scaled_event(d, rs, old, size)
        return resized, rs

    async def is_scaling_event(self) -> bool:
        new_rs, old = await self.get_all(create=False)
        for rs in _active([*old, new_rs]):
            ann = rs["metadata"].get("annotations") or {}
            try:
                desired = int(ann[du.DESIRED_REPLICAS])
            except (KeyError, ValueError):
                continue
            if desired != du.replicas(self.d):
                return True
        return False

    async def scale(self, new_rs: Obj | None, old: list[Obj]) -> None:
        d = self.d
        latest = self._active_or_latest(new_rs, old)
        if latest is not None:
            if du.replicas(latest) != du.replicas(d):
                await self.scale_rs(latest, du.replicas(d), only_if_resized=False)
            return
        if self._saturated(new_rs):
            for rs in _active(old):
                await self.scale_rs(rs, 0)
            return
        if not du.is_rolling(d):
            return
        # Mid-rollout resize: spread the difference over the active sets by their share.
        active = _active([*old, new_rs])
        allowed = du.replicas(d) + du.max_surge(d) if du.replicas(d) > 0 else 0
        to_add = allowed - sum(du.replicas(rs) for rs in active)
        newest_first = to_add > 0
        active.sort(key=lambda rs: du.created_key(rs)[0], reverse=newest_first)
        active.sort(key=lambda rs: du.replicas(rs), reverse=True)
        sizes: dict[str, int] = {}
        added = 0
        for rs in active:
            share = du.proportion(rs, d, to_add, added) if to_add else 0
            sizes[rs["metadata"]["uid"]] = du.replicas(rs) + share
            added += share
        for i, rs in enumerate(active):
            size = sizes[rs["metadata"]["uid"]]
            if i == 0 and to_add:
                size = max(0, size + to_add - added)  # leftovers go to the largest set
            await self.scale_rs(rs, size, only_if_resized=False)

    @staticmethod
    def _active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
        old = sorted(old, key=du.created_key)
        active = _active([*old, new_rs])
        if len(active) == 1:
            return active[0]
        if not active:
            return new_rs if new_rs is not None else (old[-1] if old else None)
        return None

    def _saturated(self, rs: Obj | None) -> bool:
        if rs is None:
            return False
        want = du.replicas(self.d)
        desired = (rs["metadata"].get("annotations") or {}).get(du.DESIRED_REPLICAS)
        return desired == str(want) and du.replicas(rs) == want and du.status_int(rs, "availableReplicas") == want

    # -- strategies --------------------------------------------------------------------------------
    async def sync(self) -> None:
        """Scaling only (paused, or a replicas change): no new ReplicaSet is created."""
        new_rs, old = await self.get_all(create=False)
        await self.scale(new_rs, old)
        new_rs = self._current(new_rs) if new_rs is not None else None
        old = [self._current(rs) for rs in old]
        if du.spec(self.d).get("paused"):
            await self.cleanup(old)
        await self.sync_status([*old, new_rs] if new_rs else old, new_rs, rollout=False)

    async def sync_status_only(self) -> None:
        new_rs, old = await self.get_all(create=False)
        await self.sync_status([*old, new_rs] if new_rs else old, new_rs, rollout=False)

    def _current(self, rs: Obj) -> Obj:
        uid = rs["metadata"]["uid"]
        return next((s for s in self.sets if s["metadata"]["uid"] == uid), rs)

    async def rolling(self) -> float | None:
        new_rs, _ = await self.get_all(create=True)
        assert new_rs is not None
        if du.replicas(new_rs) != du.replicas(self.d):
            want = du.replicas(self.d)
            if du.replicas(new_rs) < want:
                want = du.new_rs_replicas(self.d, self.sets, new_rs)
            scaled, new_rs = await self.scale_rs(new_rs, want)
            if scaled:
                return await self.sync_status(self._all(new_rs), new_rs)
        if await self._reconcile_old(new_rs):
            return await self.sync_status(self._all(new_rs), self._current(new_rs))
        new_rs = self._current(new_rs)
        if du.is_complete(self.d, du.calculate_status(self.d, self.sets, new_rs, self.now)):
            await self.cleanup([rs for rs in self.sets if rs is not new_rs])
        return await self.sync_status(self._all(new_rs), new_rs)

    def _all(self, new_rs: Obj) -> list[Obj]:
        return list(self.sets) if any(s["metadata"]["uid"] == new_rs["metadata"]["uid"] for s in self.sets) else [*self.sets, new_rs]

    async def _reconcile_old(self, new_rs: Obj) -> bool:
        d = self.d
        old = _active([rs for rs in self.sets if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]])
        if not old:
            return False
        all_pods = sum(du.replicas(rs) for rs in self.sets)
        min_available = du.replicas(d) - du.max_unavailable(d)
        new_unavailable = du.replicas(new_rs) - du.status_int(new_rs, "availableReplicas")
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return False
        # First drop old pods that are not available anyway: they cost no availability.
        cleaned = 0
        for rs in sorted(old, key=du.created_key):
            if cleaned >= budget:
                break
            size, available = du.replicas(rs), du.status_int(rs, "availableReplicas")
            if size == 0 or size == available:
                continue
            drop = min(budget - cleaned, size - available)
            await self.scale_rs(rs, size - drop)
            cleaned += drop
        # Then scale old sets down as far as availability allows.
        available = sum(du.status_int(rs, "availableReplicas") for rs in self.sets)
        allowed = available - min_available
        scaled = 0
        if allowed > 0:
            for rs in sorted(_active([self._current(r) for r in old]), key=du.created_key):
                if scaled >= allowed:
                    break
                drop = min(du.replicas(rs), allowed - scaled)
                await self.scale_rs(rs, du.replicas(rs) - drop)
                scaled += drop
        return cleaned + scaled > 0

    async def recreate(self, pod_map: dict[str, list[Obj]]) -> float | None:
        new_rs, old = await self.get_all(create=False)
        scaled = False
        for rs in _active(old):
            changed, _ = await self.scale_rs(rs, 0)
            scaled = scaled or changed
        if scaled:
            return await self.sync_status(list(self.sets), new_rs)
        if self._old_pods_running(new_rs, old, pod_map):
            return await self.sync_status(list(self.sets), new_rs)
        if new_rs is None:
            new_rs, old = await self.get_all(create=True)
            assert new_rs is not None
        _, new_rs = await self.scale_rs(new_rs, du.replicas(self.d))
        if du.is_complete(self.d, du.calculate_status(self.d, self.sets, new_rs, self.now)):
            await self.cleanup([rs for rs in self.sets if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]])
        return await self.sync_status(self._all(new_rs), new_rs)

    @staticmethod
    def _old_pods_running(new_rs: Obj | None, old: list[Obj], pod_map: dict[str, list[Obj]]) -> bool:
        if sum(du.status_int(rs, "replicas") for rs in old) > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for uid, pods in pod_map.items():
            if uid == new_uid:
                continue
            if any((p.get("status") or {}).get("phase") not in ("Failed", "Succeeded") for p in pods):
                return True
        return False

    async def cleanup(self, old: list[Obj]) -> None:
        """Delete the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit."""
        limit = du.spec(self.d).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - int(limit)
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda r: (du.revision(r), du.created_key(r))):
            if excess <= 0:
                break
            st = rs.get("status") or {}
            gen_seen = int(st.get("observedGeneration") or 0) >= int(rs["metadata"].get("generation") or 0)
            if du.replicas(rs) != 0 or int(st.get("replicas") or 0) != 0 or not gen_seen:
                continue
            await self.ctrl.delete_rs(rs)
            excess -= 1

    # -- status and progress ---------------------------------------------------------------------
    async def sync_status(self, sets: list[Obj], new_rs: Obj | None, rollout: bool = True) -> float | None:
        d = self.d
        sets = [self._current(rs) for rs in sets]
        new_rs = self._current(new_rs) if new_rs is not None else None
        status = du.calculate_status(d, sets, new_rs, self.now)
        if rollout:
            self._progress(status, new_rs)
            failure = next(
                (c for rs in sets for c in (rs.get("status") or {}).get("conditions") or ()
                 if c.get("type") == "ReplicaFailure" and c.get("status") == "True"),
                None,
            )
            if failure is not None:
                set_condition(status, new_condition("ReplicaFailure", "True", failure.get("reason", ""), failure.get("message", ""), self.now, True))
            else:
                remove_condition(status, "ReplicaFailure")
        if status == (d.get("status") or {}):
            return self._requeue_stuck(status) if rollout else None
        await self.ctrl.write_status(d, status)
        return None

    def _progress(self, status: Obj, new_rs: Obj | None) -> None:
        d = self.d
        if not du.has_progress_deadline(d):
            remove_condition(status, "Progressing")
            return
        cur = get_condition(status, "Progressing")
        done = status.get("replicas") == status.get("updatedReplicas") and cur is not None and cur.get("reason") == du.NEW_RS_AVAILABLE
        if done:
            return
        name = new_rs["metadata"]["name"] if new_rs is not None else None
        if du.is_complete(d, status):
            msg = f'ReplicaSet "{name}" has successfully progressed.' if name else "Deployment has successfully progressed."
            set_condition(status, new_condition("Progressing", "True", du.NEW_RS_AVAILABLE, msg, self.now, True))
        elif du.is_progressing(d, status):
            msg = f'ReplicaSet "{name}" is progressing.' if name else "Deployment is progressing."
            cond = new_condition("Progressing", "True", du.RS_UPDATED, msg, self.now, True)
            if cur is not None and cur.get("status") == "True":
                cond["lastTransitionTime"] = cur.get("lastTransitionTime")
            remove_condition(status, "Progressing")
            set_condition(status, cond)
        elif du.timed_out(d, status, self.now):
            msg = f'ReplicaSet "{name}" has timed out progressing.' if name else f'Deployment "{d["metadata"]["name"]}" has timed out progressing.'
            set_condition(status, new_condition("Progressing", "False", du.TIMED_OUT, msg, self.now, True))

    def _requeue_stuck(self, status: Obj) -> float | None:
        """Check again when the progress deadline would pass."""
        d = self.d
        cond = get_condition(status, "Progressing")
        if not du.has_progress_deadline(d) or cond is None:
            return None
        if du.is_complete(d, status) or cond.get("reason") in (du.TIMED_OUT, du.NEW_RS_AVAILABLE):
            return None
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return None
        return max(since + int(du.spec(d)["progressDeadlineSeconds"]) - self.now, 0.0) + 1.0

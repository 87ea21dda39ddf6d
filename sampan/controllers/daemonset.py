"""DaemonSet controller: one pod on every node the pod template fits (nodeSelector, node
affinity, taints against tolerations), pinned by a ``metadata.name`` node-affinity term so
the scheduler binds it there; RollingUpdate (maxUnavailable or maxSurge) or OnDelete, with
ControllerRevisions naming each template."""

from __future__ import annotations

import copy
import logging

from sampan.api.selectors import LabelSelector
from sampan.client.events import WARNING
from sampan.client.expectations import UIDTrackingExpectations
from sampan.client.interface import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS, Obj, is_not_found, object_key
from sampan.controllers.base import Controller, controller_owner, register
from sampan.controllers.util.writes import slow_start_batch, status_patch, typed
from sampan.controllers.util import revisions as rev
from sampan.controllers.util import taints as tt
from sampan.controllers.util.claim import Claimer, SelectorCache, candidates, index_for_claims
from sampan.controllers.util.conditions import parse_time
from sampan.controllers.util.intstr import scaled_value
from sampan.controllers.util.podcontrol import PodControl
from sampan.controllers.util.pods import is_available, is_ready, is_terminating, phase, pod_from_template
from sampan.scheduler.helpers import NO_EXECUTE, NO_SCHEDULE, RequiredNodeAffinity, first_untolerated

log = logging.getLogger(__name__)

TEMPLATE_GENERATION_LABEL = "pod-template-generation"
BURST_REPLICAS = 250

# Tolerations every daemon pod gets, so node trouble does not evict or block it (upstream's list).
DAEMON_TOLERATIONS = [
    {"key": tt.NOT_READY, "operator": "Exists", "effect": tt.NO_EXECUTE},
    {"key": tt.UNREACHABLE, "operator": "Exists", "effect": tt.NO_EXECUTE},
    {"key": tt.DISK_PRESSURE, "operator": "Exists", "effect": tt.NO_SCHEDULE},
    {"key": tt.MEMORY_PRESSURE, "operator": "Exists", "effect": tt.NO_SCHEDULE},
    {"key": tt.PID_PRESSURE, "operator": "Exists", "effect": tt.NO_SCHEDULE},
    {"key": tt.UNSCHEDULABLE, "operator": "Exists", "effect": tt.NO_SCHEDULE},
]
NETWORK_UNAVAILABLE = {"key": tt.NETWORK_UNAVAILABLE, "operator": "Exists", "effect": tt.NO_SCHEDULE}


def with_daemon_tolerations(spec: Obj) -> list[Obj]:
    tolerations = list(spec.get("tolerations") or [])
    extra = DAEMON_TOLERATIONS + ([NETWORK_UNAVAILABLE] if spec.get("hostNetwork") else [])
    for tol in extra:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in tolerations):
            tolerations.append(dict(tol))
    return tolerations


def pin_to_node(spec: Obj, node: str) -> None:
    """Replace the required node affinity with ``metadata.name In [node]`` (the rest is kept)."""
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}


def node_of(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or ():
        for field in term.get("matchFields") or ():
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(field.get("values") or ()) == 1:
                return str(field["values"][0])
    return None


Fit = dict[str, tuple[bool, bool]]


class Placement:
    """A DaemonSet's pod template compiled once: which nodes it should and may run on."""

    def __init__(self, ds: Obj) -> None:
        self.spec: Obj = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        self.affinity = RequiredNodeAffinity(self.spec)
        self.tolerations = with_daemon_tolerations(self.spec)

    def decide(self, node: Obj) -> tuple[bool, bool]:
        """(should run a new pod here, may keep an existing one running)."""
        name = node["metadata"]["name"]
        if self.spec.get("nodeName") and self.spec["nodeName"] != name:
            return False, False
        if not self.affinity.matches(node["metadata"].get("labels") or {}, name):
            return False, False
        taints = (node.get("spec") or {}).get("taints") or []
        if not taints or first_untolerated(taints, self.tolerations, (NO_SCHEDULE, NO_EXECUTE)) is None:
            return True, True
        # A running daemon pod stays unless a NoExecute taint would evict it.
        return False, first_untolerated(taints, self.tolerations, (NO_EXECUTE,)) is None

    def fit(self, nodes: list[Obj]) -> Fit:
        return {n["metadata"]["name"]: self.decide(n) for n in nodes}


def should_run(ds: Obj, node: Obj) -> tuple[bool, bool]:
    return Placement(ds).decide(node)


def _created(pod: Obj) -> tuple[float, str]:
    return (parse_time(pod["metadata"].get("creationTimestamp")) or 0.0, pod["metadata"].get("name", ""))


@register
class DaemonSetController(Controller):
    name = "daemonset"
    component = "daemonset-controller"
    workers = 2

    def setup(self) -> None:
        self.expectations = UIDTrackingExpectations()
        self.pods_ctl = PodControl(self.client, self.recorder, self.expectations)
        self._selectors = SelectorCache()
        self.sets = self.watch(DAEMONSETS)
        self.pods = self.informer(PODS)
        index_for_claims(self.pods)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes = self.informer(NODES)
        self.nodes.add_handler(self._node_changed, self._node_updated, self._node_changed)
        self.revisions = self.informer(CONTROLLERREVISIONS)
        index_for_claims(self.revisions)

    def selector(self, ds: Obj) -> LabelSelector:
        return self._selectors.get(ds)

    # -- event handlers ----------------------------------------------------------------------
    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_owner(pod)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        return f"{pod['metadata'].get('namespace')}/{ref.get('name')}"

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
        self._pod_changed(pod)

    def _pod_changed(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.queue.add(key)
        elif controller_owner(pod) is None:
            for ds in self.sets.list(pod["metadata"].get("namespace")):
                if self.selector(ds).matches(pod["metadata"].get("labels")):
                    self.enqueue(ds)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if new["metadata"].get("deletionTimestamp"):
            # A graceful delete started: count it now so the node gets its replacement at once.
            self._pod_deleted(new)
            return
        if controller_owner(old) != controller_owner(new):
            self._pod_changed(old)
        self._pod_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    def _node_changed(self, _node: Obj) -> None:
        for ds in self.sets.list():
            self.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # Only what decides placement matters (heartbeats change the status all the time).
        if old["metadata"].get("labels") != new["metadata"].get("labels") or old.get("spec") != new.get("spec"):
            self._node_changed(new)

    # -- reconcile -------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        cached = self.sets.get(key)
        if cached is None:
            self.expectations.delete(key)
            return None
        if cached["metadata"].get("deletionTimestamp"):
            return None
        ds = copy.deepcopy(typed(cached, "apps/v1", "DaemonSet"))
        selector = self.selector(ds)
        owned = await Claimer(self.client, CONTROLLERREVISIONS, ds, DAEMONSETS, selector).claim(candidates(self.revisions, ds))
        update, history, collisions = await rev.sync_revisions(self.client, ds, owned)
        hash_ = (update["metadata"].get("labels") or {}).get(rev.HASH_LABEL, "")
        pods = await Claimer(self.client, PODS, ds, DAEMONSETS, selector).claim(candidates(self.pods, ds))
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            by_node.setdefault(node_of(pod) or "", []).append(pod)
        fit = Placement(ds).fit(self.nodes.list())
        if self.expectations.satisfied(key):
            await self.manage(key, ds, fit, by_node, hash_)
            strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
            if self.expectations.satisfied(key) and strategy.get("type", "RollingUpdate") == "RollingUpdate":
                await self.rolling_update(key, ds, fit, by_node, hash_)
        live = {r["metadata"]["name"] for r in history if (r["metadata"].get("labels") or {}).get(rev.HASH_LABEL) in
                {(p["metadata"].get("labels") or {}).get(rev.HASH_LABEL) for p in pods} | {hash_}}
        await rev.truncate_history(self.client, ds, history, live)
        return await self.update_status(ds, fit, by_node, hash_, collisions)

    async def manage(self, key: str, ds: Obj, fit: Fit, by_node: dict[str, list[Obj]], hash_: str) -> None:
        create_on: list[str] = []
        delete: list[Obj] = []
        surge = self._max_surge(ds, fit) > 0
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.ctx.clock()
        for name, (run, keep) in sorted(fit.items()):
            pods = by_node.get(name, [])
            if run and not pods:
                create_on.append(name)
            elif keep:
                running: list[Obj] = []
                for pod in pods:
                    if is_terminating(pod):
                        continue
                    if phase(pod) == "Failed":
                        msg = f"Found failed daemon pod {pod['metadata']['namespace']}/{pod['metadata']['name']} on node {name}, will try to kill it"
                        self.recorder.event(ds, WARNING, "FailedDaemonPod", msg)
                        delete.append(pod)
                        continue
                    running.append(pod)
                running.sort(key=_created)
                if not surge:
                    if not running and run:
                        create_on.append(name)
                    delete.extend(running[1:])  # only the oldest stays
                else:
                    delete.extend(self._surge_extras(running, hash_, min_ready, now))
            else:
                delete.extend(p for p in pods if not is_terminating(p))
        # Pods pinned to nodes that no longer exist.
        for name, pods in by_node.items():
            if name not in fit:
                delete.extend(p for p in pods if not is_terminating(p))
        await self.sync_nodes(key, ds, delete, create_on, hash_)

    @staticmethod
    def _surge_extras(running: list[Obj], hash_: str, min_ready: int, now: float) -> list[Obj]:
        """With surge two pods may share a node while the new one is not yet available."""
        extra: list[Obj] = []
        newest: Obj | None = None
        oldest: Obj | None = None
        for pod in running:
            if (pod["metadata"].get("labels") or {}).get(rev.HASH_LABEL) == hash_:
                if newest is None:
                    newest = pod
                    continue
            elif oldest is None:
                oldest = pod
                continue
            extra.append(pod)
        if newest is not None and oldest is not None:
            if not is_ready(oldest) or is_available(newest, min_ready, now):
                extra.append(oldest)
        return extra

    async def sync_nodes(self, key: str, ds: Obj, delete: list[Obj], create_on: list[str], hash_: str) -> None:
        create_on = create_on[:BURST_REPLICAS]
        delete = delete[:BURST_REPLICAS]
        self.expectations.expect_deletions(key, [object_key(p) for p in delete])
        self.expectations.raise_expectations(key, len(create_on), 0)
        pending = list(create_on)

        async def create_one() -> None:
            await self._create(key, ds, pending.pop(0), hash_)

        _, attempted, error = await slow_start_batch(len(create_on), 1, create_one)
        if len(create_on) - attempted:
            self.expectations.lower_expectations(key, len(create_on) - attempted, 0)
        for pod in delete:
            await self.pods_ctl.delete(key, ds, pod)
        if error is not None:
            raise error

    async def _create(self, key: str, ds: Obj, node: str, hash_: str) -> None:
        template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels[rev.HASH_LABEL] = hash_
        labels[TEMPLATE_GENERATION_LABEL] = str(ds["metadata"].get("generation", 0))
        pod = pod_from_template(template, ds)
        pod["spec"]["tolerations"] = with_daemon_tolerations(pod["spec"])
        pin_to_node(pod["spec"], node)
        await self.pods_ctl.create(key, ds, pod)

    # -- rolling update ------------------------------------------------------------------------
    def _budgets(self, ds: Obj, fit: Fit) -> tuple[int, int]:
        rolling = (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")) or {}
        desired = sum(1 for run, _ in fit.values() if run)
        surge = scaled_value(rolling.get("maxSurge"), desired, True, 0)
        unavailable = scaled_value(rolling.get("maxUnavailable"), desired, True, 1)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable

    def _max_surge(self, ds: Obj, fit: Fit) -> int:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return 0
        return self._budgets(ds, fit)[0]

    async def rolling_update(self, key: str, ds: Obj, fit: Fit, by_node: dict[str, list[Obj]], hash_: str) -> None:
        surge, max_unavailable = self._budgets(ds, fit)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.ctx.clock()
        unavailable = 0
        replace_now: list[Obj] = []
        replaceable: list[Obj] = []
        new_nodes_now: list[str] = []
        new_node_candidates: list[str] = []
        surging = 0
        for name in sorted(by_node):
            if name not in fit or not fit[name][1]:
                continue
            alive = [p for p in by_node[name] if not is_terminating(p)]
            new = [p for p in alive if (p["metadata"].get("labels") or {}).get(rev.HASH_LABEL) == hash_]
            old = [p for p in alive if p not in new]
            if len(new) > 1 or len(old) > 1:
                unavailable += 1  # manage() is cleaning up duplicates
                continue
            new_pod, old_pod = (new or [None])[0], (old or [None])[0]
            if surge == 0:
                if (new_pod is None) == (old_pod is None):
                    unavailable += 1
                elif new_pod is not None:
                    unavailable += not is_available(new_pod, min_ready, now)
                elif old_pod is not None and not is_available(old_pod, min_ready, now):
                    replace_now.append(old_pod)
                elif old_pod is not None and unavailable < max_unavailable:
                    replaceable.append(old_pod)
            elif old_pod is None:
                continue
            elif new_pod is None:
                if not is_available(old_pod, min_ready, now):
                    new_nodes_now.append(name)
                elif surging < surge:
                    new_node_candidates.append(name)
            elif not is_available(new_pod, min_ready, now):
                surging += 1
            else:
                replace_now.append(old_pod)
        if surge == 0:
            room = max(0, min(max_unavailable - unavailable, len(replaceable)))
            await self.sync_nodes(key, ds, replace_now + replaceable[:room], [], hash_)
        else:
            room = max(0, min(surge - surging, len(new_node_candidates)))
            await self.sync_nodes(key, ds, replace_now, new_nodes_now + new_node_candidates[:room], hash_)

    # -- status --------------------------------------------------------------------------------
    async def update_status(
        self, ds: Obj, fit: Fit, by_node: dict[str, list[Obj]], hash_: str, collisions: int
    ) -> float | None:
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.ctx.clock()
        desired = current = ready = available = updated = misscheduled = 0
        for name, (run, _) in fit.items():
            pods = sorted((p for p in by_node.get(name, []) if not is_terminating(p)), key=_created)
            if run:
                desired += 1
                if pods:
                    current += 1
                    pod = pods[0]
                    ready += is_ready(pod)
                    available += is_available(pod, min_ready, now)
                    updated += (pod["metadata"].get("labels") or {}).get(rev.HASH_LABEL) == hash_
            elif pods:
                misscheduled += 1
        old: Obj = ds.get("status") or {}
        status: Obj = {
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 0),
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
            "numberUnavailable": desired - available,
            "collisionCount": collisions,
        }
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if not all(old.get(k) == v for k, v in status.items()) or not set(old) <= set(status):
            meta = ds["metadata"]
            try:
                await self.client.patch(
                    DAEMONSETS, meta["name"], status_patch(old, status), "merge", meta.get("namespace"), subresource="status"
                )
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        if min_ready and ready != available:
            return float(min_ready)
        return None

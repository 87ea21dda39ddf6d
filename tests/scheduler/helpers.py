"""Hand-built snapshots and a one-call way to run the pure core over them."""

from __future__ import annotations

import random
from typing import Any

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.config import SchedulerConfig
from sampan.scheduler.core import Algorithm, ScheduleResult
from sampan.scheduler.framework import CycleState, Framework, Handle
from sampan.scheduler.types import PodInfo

from tests.scheduler.conftest import node_obj, pod_obj  # noqa: F401 - re-exported for the tests

Obj = dict[str, Any]


def bound(pod: Obj, node: str) -> Obj:
    pod = {**pod, "spec": {**pod["spec"], "nodeName": node}}
    pod["metadata"] = {**pod["metadata"], "uid": "uid-" + pod["metadata"]["name"]}
    return pod


def algorithm(config: Any = None, seed: int = 1) -> Algorithm:
    cfg = config if isinstance(config, SchedulerConfig) else SchedulerConfig.from_dict(config)
    return Algorithm(Framework.build(cfg, Handle()), cfg.percentage_of_nodes_to_score, random.Random(seed))


def schedule(nodes: list[Obj], pods: list[Obj], pod: Obj, config: Any = None) -> ScheduleResult:
    alg = algorithm(config)
    return alg.schedule(CycleState(), PodInfo(pod), Snapshot.build(nodes, pods))


def feasible(nodes: list[Obj], pods: list[Obj], pod: Obj, config: Any = None) -> set[str]:
    """Names of the nodes that pass every filter."""
    snap = Snapshot.build(nodes, pods)
    alg = algorithm(config)
    state = CycleState()
    info = PodInfo(pod)
    status, filters = alg.framework.run_pre_filter(state, info, snap)
    if status is not None:
        return set()
    return {n.name for n in snap.nodes if Framework.run_filters(filters, state, info, n) is None}


def scores(nodes: list[Obj], pods: list[Obj], pod: Obj, config: Any = None) -> dict[str, int]:
    snap = Snapshot.build(nodes, pods)
    alg = algorithm(config)
    state = CycleState()
    info = PodInfo(pod)
    alg.framework.run_pre_filter(state, info, snap)
    totals = alg.framework.run_score(state, info, snap, snap.nodes)
    return {n.name: s for n, s in zip(snap.nodes, totals)}

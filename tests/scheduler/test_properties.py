"""Property: whatever the nodes and pods, the core never over-commits a node."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.scheduler.cache import Cache
from sampan.scheduler.config import SchedulerConfig
from sampan.scheduler.core import Algorithm
from sampan.scheduler.framework import CycleState, Framework, Handle
from sampan.scheduler.types import PodInfo

from tests.scheduler.conftest import node_obj, pod_obj

nodes_st = st.lists(
    st.tuples(st.integers(0, 8000), st.integers(0, 16), st.integers(0, 6)),  # milli-cpu, GiB, max pods
    min_size=1,
    max_size=12,
)
pods_st = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(1, 4000)), st.one_of(st.none(), st.integers(1, 8192))),
    min_size=1,
    max_size=60,
)
strategy_st = st.sampled_from(["LeastAllocated", "MostAllocated"])


@settings(max_examples=150, deadline=None)
@given(nodes=nodes_st, pods=pods_st, strategy=strategy_st, seed=st.integers(0, 2**16))
def test_no_node_is_ever_over_committed(nodes, pods, strategy, seed) -> None:
    config = SchedulerConfig.from_dict({"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": strategy}}}
    ]}]})
    alg = Algorithm(Framework.build(config, Handle()), rng=random.Random(seed))
    cache = Cache()
    capacity = {}
    for i, (cpu, gib, max_pods) in enumerate(nodes):
        name = f"n{i}"
        cache.add_node(node_obj(name, cpu=f"{cpu}m", memory=f"{gib}Gi", pods=max_pods))
        capacity[name] = (cpu, gib * 1024**3, max_pods)
    placed: dict[str, list[tuple[int, int]]] = {name: [] for name in capacity}
    for i, (cpu, mib) in enumerate(pods):
        pod = pod_obj(f"p{i}", cpu=f"{cpu}m" if cpu else None, memory=f"{mib}Mi" if mib else None)
        info = PodInfo(pod)
        result = alg.schedule(CycleState(), info, cache.snapshot())
        if result.node:
            cache.assume(info, result.node)
            placed[result.node].append((cpu or 0, (mib or 0) * 1024**2))
        else:
            # Unschedulable only if no node had room (checked from the raw numbers).
            for name, (cap_cpu, cap_mem, max_pods) in capacity.items():
                used_cpu = sum(c for c, _ in placed[name])
                used_mem = sum(m for _, m in placed[name])
                fits = (
                    len(placed[name]) < max_pods
                    and (cpu or 0) <= cap_cpu - used_cpu
                    and (mib or 0) * 1024**2 <= cap_mem - used_mem
                )
                assert not fits, f"pod {i} fit on {name} but was not scheduled"
    for name, (cap_cpu, cap_mem, max_pods) in capacity.items():
        assert len(placed[name]) <= max_pods
        assert sum(c for c, _ in placed[name]) <= cap_cpu
        assert sum(m for _, m in placed[name]) <= cap_mem
        info = cache.nodes[name]
        assert len(info.pods) == len(placed[name])
        assert info.requested.cpu == sum(c for c, _ in placed[name])


taint_st = st.sampled_from([
    None,
    {"key": "k", "value": "v", "effect": "NoSchedule"},
    {"key": "k", "value": "v", "effect": "PreferNoSchedule"},
    {"key": "other", "effect": "NoExecute"},
])
toleration_st = st.sampled_from([
    None,
    {"key": "k", "operator": "Exists"},
    {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
    {"operator": "Exists", "effect": "NoExecute"},
])


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 3), taint_st, st.booleans()), min_size=1, max_size=30),
    used=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 2000)), max_size=40),
    cpu=st.one_of(st.none(), st.integers(1, 3000)),
    toleration=toleration_st,
)
def test_chunked_filters_and_memoized_scores_match_the_per_node_path(nodes, used, cpu, toleration) -> None:
    from sampan.scheduler.cache import Snapshot
    from sampan.scheduler.framework import Framework as Fw

    node_objs = []
    for i, (node_cpu, max_pods, taint, cordoned) in enumerate(nodes):
        node_objs.append(node_obj(f"n{i:02d}", cpu=f"{node_cpu}m", pods=max_pods, taints=[taint] if taint else None,
                                  unschedulable=cordoned))
    pods = []
    for j, (on, pod_cpu) in enumerate(used):
        if on < len(nodes):
            placed = pod_obj(f"u{j}", cpu=f"{pod_cpu}m")
            placed["spec"]["nodeName"] = f"n{on:02d}"
            pods.append(placed)
    pod = pod_obj("p", cpu=f"{cpu}m" if cpu else None, tolerations=[toleration] if toleration else [])
    snap = Snapshot.build(node_objs, pods)
    alg = Algorithm(Framework.build(SchedulerConfig(), Handle()), percentage=100)
    state = CycleState()
    info = PodInfo(pod)
    status, filters = alg.framework.run_pre_filter(state, info, snap)
    assert status is None
    one_by_one = [n for n in snap.nodes if Fw.run_filters(filters, state, info, n) is None]
    chunked, _ = alg._filter_chunks(filters, state, info, snap.nodes, 0, len(snap.nodes))
    assert [n.name for n in chunked] == [n.name for n in one_by_one]
    if len(one_by_one) > 1:
        alg.framework.run_score(state, info, snap, one_by_one)  # fills the per-node memo
        extra = pod_obj("extra", cpu="100m", memory="1Gi")
        extra["spec"]["nodeName"] = one_by_one[0].name
        one_by_one[0].add_pod(PodInfo(extra))  # a changed node must not be served from the memo
        remembered = alg.framework.run_score(CycleState(), info, snap, one_by_one)
        for n in snap.nodes:
            n.memo.clear()
        assert remembered == alg.framework.run_score(CycleState(), info, snap, one_by_one)


ops_st = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "relabel", "drop-node", "add-node"]), st.integers(0, 7),
              st.integers(0, 3), st.booleans()),
    min_size=1,
    max_size=60,
)


@settings(max_examples=120, deadline=None)
@given(ops=ops_st)
def test_incremental_spread_domain_counts_match_a_recount(ops) -> None:
    from sampan.scheduler.cache import Cache
    from sampan.scheduler.plugins.podtopologyspread import Constraint, PodTopologySpread

    zone = "topology.kubernetes.io/zone"
    cache = Cache()
    for i in range(6):
        cache.add_node(node_obj(f"n{i}", labels={zone: f"z{i % 3}"}))
    plugin = PodTopologySpread({"defaultingType": "List"}, Handle())
    incoming = PodInfo(pod_obj("in", labels={"app": "web"}))
    constraint = Constraint({"maxSkew": 1, "topologyKey": zone, "whenUnsatisfiable": "ScheduleAnyway",
                             "labelSelector": {"matchLabels": {"app": "web"}}}, incoming)
    pods: dict[str, str] = {}
    for step, (op, n, z, web) in enumerate(ops):
        name = f"n{n}"
        if op == "add":
            pod = pod_obj(f"p{step}", labels={"app": "web" if web else "db"})
            pod["spec"]["nodeName"] = name
            cache.add_pod(pod)
            pods[f"default/p{step}"] = name
        elif op == "remove" and pods:
            key = sorted(pods)[n % len(pods)]
            cache.remove_pod(key)
            del pods[key]
        elif op == "relabel" and name in cache.nodes and cache.nodes[name].node is not None:
            cache.update_node(node_obj(name, labels={zone: f"z{z}"} if web else {}))
        elif op == "drop-node":
            cache.remove_node(name)
        elif op == "add-node":
            cache.add_node(node_obj(name, labels={zone: f"z{z}"}))
        snap = cache.snapshot()
        entry = plugin._domain_counts(constraint, "default", snap)
        got = {k: v for k, v in entry.totals.items() if v}
        sizes = {k: v for k, v in entry.sizes.items() if v}
        want: dict[str, int] = {}
        want_sizes: dict[str, int] = {}
        for node in snap.nodes:
            value = node.labels.get(zone)
            if value is None:
                continue
            want_sizes[value] = want_sizes.get(value, 0) + 1
            count = sum(1 for p in node.pods.values() if p.labels.get("app") == "web")
            if count:
                want[value] = want.get(value, 0) + count
        assert got == want and sizes == want_sizes


@settings(max_examples=80, deadline=None)
@given(
    placed=st.lists(st.tuples(st.integers(0, 7), st.booleans()), max_size=30),
    labelled=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_spread_score_many_matches_score(placed, labelled) -> None:
    from sampan.scheduler.cache import Snapshot

    zone = "topology.kubernetes.io/zone"
    nodes = [node_obj(f"n{i}", labels={zone: f"z{i % 3}"} if labelled[i] else {}) for i in range(8)]
    pods = []
    for j, (on, web) in enumerate(placed):
        p = pod_obj(f"p{j}", labels={"app": "web" if web else "db"})
        p["spec"]["nodeName"] = f"n{on}"
        pods.append(p)
    spec = [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "web"}}}
            for skew, key in ((3, "kubernetes.io/hostname"), (5, zone))]
    pod = pod_obj("in", labels={"app": "web"}, topologySpreadConstraints=spec)
    snap = Snapshot.build(nodes, pods)
    alg = Algorithm(Framework.build(SchedulerConfig(), Handle()))
    plugin = alg.framework.plugins["PodTopologySpread"]
    state = CycleState()
    info = PodInfo(pod)
    if plugin.pre_score(state, info, snap, snap.nodes) is None:  # type: ignore[attr-defined]
        one = [plugin.score(state, info, n) for n in snap.nodes]  # type: ignore[attr-defined]
        assert plugin.score_many(state, info, snap.nodes) == one  # type: ignore[attr-defined]


@settings(max_examples=80, deadline=None)
@given(
    placed=st.lists(st.tuples(st.integers(0, 8), st.booleans()), max_size=30),
    zones=st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=9, max_size=9),
    skew=st.integers(1, 3),
)
def test_hard_spread_running_totals_match_a_recount(placed, zones, skew) -> None:
    """The same feasible nodes from the running totals as from a recount over every node
    (forced by a node affinity that every node matches)."""
    from sampan.scheduler.cache import Cache
    from sampan.scheduler.framework import Framework as Fw

    zone = "topology.kubernetes.io/zone"
    cache = Cache()
    for i, z in enumerate(zones):
        cache.add_node(node_obj(f"n{i}", labels={zone: f"z{z}"} if z is not None else {}))
    spec = [{"maxSkew": skew, "topologyKey": zone, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "web"}}}]
    kept = Algorithm(Framework.build(SchedulerConfig(), Handle()))
    for j, (on, web) in enumerate(placed):
        pod = pod_obj(f"p{j}", labels={"app": "web" if web else "db"})
        pod["spec"]["nodeName"] = f"n{on}"
        cache.add_pod(pod)
        incoming = PodInfo(pod_obj(f"in{j}", labels={"app": "web"}, topologySpreadConstraints=spec))
        everywhere = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "Exists"}]}]}}}
        recount = PodInfo(pod_obj(f"in{j}", labels={"app": "web"}, topologySpreadConstraints=spec,
                                  affinity=everywhere))
        results = []
        for alg, incoming in ((kept, incoming), (Algorithm(Framework.build(SchedulerConfig(), Handle())), recount)):
            snap = cache.snapshot()
            state = CycleState()
            status, filters = alg.framework.run_pre_filter(state, incoming, snap)
            assert status is None
            results.append({n.name for n in snap.nodes if Fw.run_filters(filters, state, incoming, n) is None})
            chunked, _ = alg._filter_chunks(filters, state, incoming, snap.nodes, 0, len(snap.nodes))
            assert {n.name for n in chunked} == results[-1]
        assert results[0] == results[1]


_request_st = st.dictionaries(st.sampled_from(["cpu", "memory", "ephemeral-storage"]), st.sampled_from(["1", "250m", "64Mi"]))


@settings(max_examples=150, deadline=None)
@given(
    containers=st.lists(_request_st, min_size=1, max_size=3),
    init=st.lists(st.tuples(_request_st, st.booleans()), max_size=2),
)
def test_non_zero_requests_match_the_full_computation(containers, init) -> None:
    from sampan.scheduler.types import pod_requests

    spec = {
        "containers": [{"name": f"c{i}", "resources": {"requests": r}} for i, r in enumerate(containers)],
        "initContainers": [
            {"name": f"i{i}", "resources": {"requests": r}, **({"restartPolicy": "Always"} if sidecar else {})}
            for i, (r, sidecar) in enumerate(init)
        ],
    }
    info = PodInfo({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    want = pod_requests(spec, non_zero=True)
    assert (info.non_zero_cpu, info.non_zero_memory) == (want.cpu, want.memory)
    assert info.non_zero_cpu > 0 and info.non_zero_memory > 0

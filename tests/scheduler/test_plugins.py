"""Each plugin over hand-built snapshots (the pure core, no API)."""

from __future__ import annotations

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.core import num_feasible_nodes_to_find
from sampan.scheduler.framework import CycleState
from sampan.scheduler.types import PodInfo

from tests.scheduler.helpers import algorithm, bound, feasible, node_obj, pod_obj, schedule, scores

ZONE = "topology.kubernetes.io/zone"


# -- NodeResourcesFit ------------------------------------------------------------------------
def test_resources_fit_counts_existing_pods() -> None:
    nodes = [node_obj("a", cpu="2", memory="4Gi"), node_obj("b", cpu="2", memory="4Gi")]
    pods = [bound(pod_obj("x", cpu="1500m"), "a")]
    assert feasible(nodes, pods, pod_obj("p", cpu="1")) == {"b"}
    assert feasible(nodes, pods, pod_obj("p", memory="5Gi")) == set()


def test_resources_fit_reasons_pods_and_extended() -> None:
    nodes = [node_obj("full", pods=1), node_obj("nogpu")]
    pods = [bound(pod_obj("x"), "full")]
    pod = pod_obj("p")
    pod["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}}
    result = schedule(nodes, pods, pod)
    assert result.node == ""
    assert result.diagnosis is not None
    message = result.diagnosis.message()
    assert message == "0/2 nodes are available: 1 Too many pods, 2 Insufficient example.com/gpu."


def test_extended_resource_fits_where_offered() -> None:
    nodes = [node_obj("gpu", extra={"example.com/gpu": "2"}), node_obj("plain")]
    pod = pod_obj("p")
    pod["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}}
    assert feasible(nodes, [], pod) == {"gpu"}


def test_init_containers_and_overhead_in_requests() -> None:
    pod = pod_obj("p", cpu="100m")
    pod["spec"]["initContainers"] = [{"name": "init", "image": "i", "resources": {"requests": {"cpu": "2"}}}]
    pod["spec"]["overhead"] = {"cpu": "250m"}
    assert PodInfo(pod).requests.cpu == 2250
    assert feasible([node_obj("small", cpu="2"), node_obj("big", cpu="3")], [], pod) == {"big"}


def test_least_allocated_prefers_emptier_node_and_most_allocated_the_fuller() -> None:
    nodes = [node_obj("busy", cpu="4", memory="8Gi"), node_obj("idle", cpu="4", memory="8Gi")]
    pods = [bound(pod_obj("x", cpu="3", memory="6Gi"), "busy")]
    pod = pod_obj("p", cpu="500m", memory="512Mi")
    assert schedule(nodes, pods, pod).node == "idle"
    binpack = {"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}
    ]}]}
    assert schedule(nodes, pods, pod, binpack).node == "busy"


# -- NodeName, NodeUnschedulable, TaintToleration ------------------------------------------------
def test_unschedulable_node_unless_tolerated() -> None:
    nodes = [node_obj("cordoned", unschedulable=True), node_obj("ok")]
    assert feasible(nodes, [], pod_obj("p")) == {"ok"}
    tolerant = pod_obj("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert feasible(nodes, [], tolerant) == {"cordoned", "ok"}
    result = schedule([nodes[0]], [], pod_obj("p"))
    assert result.diagnosis is not None
    assert result.diagnosis.message() == "0/1 nodes are available: 1 node(s) were unschedulable."


def test_taints_filter_noschedule_and_noexecute() -> None:
    nodes = [
        node_obj("ns", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        node_obj("ne", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]),
        node_obj("pref", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]),
    ]
    assert feasible(nodes, [], pod_obj("p")) == {"pref"}
    equal = pod_obj("p", tolerations=[{"key": "k", "operator": "Equal", "value": "v"}])
    assert feasible(nodes, [], equal) == {"ns", "ne", "pref"}
    wrong_value = pod_obj("p", tolerations=[{"key": "k", "operator": "Equal", "value": "w"}])
    assert feasible(nodes, [], wrong_value) == {"pref"}
    only_noschedule = pod_obj("p", tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}])
    assert feasible(nodes, [], only_noschedule) == {"ns", "pref"}
    everything = pod_obj("p", tolerations=[{"operator": "Exists"}])
    assert feasible(nodes, [], everything) == {"ns", "ne", "pref"}


def test_prefer_no_schedule_lowers_score() -> None:
    nodes = [node_obj("pref", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), node_obj("clean")]
    got = scores(nodes, [], pod_obj("p"))
    assert got["clean"] > got["pref"]
    assert schedule(nodes, [], pod_obj("p")).node == "clean"


def test_node_name_filter() -> None:
    nodes = [node_obj("a"), node_obj("b")]
    assert feasible(nodes, [], pod_obj("p", nodeName="b")) == {"b"}


# -- NodeAffinity ---------------------------------------------------------------------------------
def test_node_selector_and_required_affinity() -> None:
    nodes = [
        node_obj("ssd-a", labels={"disk": "ssd", ZONE: "a"}),
        node_obj("ssd-b", labels={"disk": "ssd", ZONE: "b"}),
        node_obj("hdd", labels={"disk": "hdd", ZONE: "a", "size": "10"}),
    ]
    assert feasible(nodes, [], pod_obj("p", nodeSelector={"disk": "ssd"})) == {"ssd-a", "ssd-b"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["a"]}]},
    ]}}}
    assert feasible(nodes, [], pod_obj("p", affinity=affinity)) == {"ssd-a", "hdd"}
    both = pod_obj("p", affinity=affinity, nodeSelector={"disk": "ssd"})
    assert feasible(nodes, [], both) == {"ssd-a"}
    gt = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["5"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["ssd-b"]}]},
    ]}}}
    assert feasible(nodes, [], pod_obj("p", affinity=gt)) == {"hdd", "ssd-b"}
    result = schedule(nodes, [], pod_obj("p", nodeSelector={"disk": "nvme"}))
    assert result.diagnosis is not None
    assert result.diagnosis.message() == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."


def test_preferred_node_affinity_scores() -> None:
    nodes = [node_obj("a", labels={ZONE: "a"}), node_obj("b", labels={ZONE: "b"})]
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["b"]}]}},
    ]}}
    assert schedule(nodes, [], pod_obj("p", affinity=preferred)).node == "b"


# -- NodePorts, ImageLocality ---------------------------------------------------------------------
def test_host_ports_conflict() -> None:
    nodes = [node_obj("a"), node_obj("b")]
    used = bound(pod_obj("x", ports=[{"containerPort": 80, "hostPort": 8080}]), "a")
    want = pod_obj("p", ports=[{"containerPort": 80, "hostPort": 8080}])
    assert feasible(nodes, [used], want) == {"b"}
    udp = pod_obj("p", ports=[{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])
    assert feasible(nodes, [used], udp) == {"a", "b"}


def test_image_locality_prefers_node_with_image() -> None:
    image = {"names": ["registry.example/app:1"], "sizeBytes": 500 * 1024 * 1024}
    nodes = [node_obj("cold"), node_obj("warm", images=[image])]
    assert scores(nodes, [], pod_obj("p"))["warm"] > scores(nodes, [], pod_obj("p"))["cold"]


# -- PodTopologySpread -----------------------------------------------------------------------------
def _spread(max_skew: int = 1, when: str = "DoNotSchedule", key: str = ZONE) -> list[dict]:
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": {"app": "web"}}}]


def test_topology_spread_hard() -> None:
    nodes = [node_obj("a1", labels={ZONE: "a"}), node_obj("a2", labels={ZONE: "a"}),
             node_obj("b1", labels={ZONE: "b"}), node_obj("nolabel")]
    pods = [bound(pod_obj("w1", labels={"app": "web"}), "a1"), bound(pod_obj("w2", labels={"app": "web"}), "b1"),
            bound(pod_obj("w3", labels={"app": "web"}), "a2")]
    pod = pod_obj("p", labels={"app": "web"}, topologySpreadConstraints=_spread())
    # zone a has 2, b has 1: adding to a gives skew 2 > 1.
    assert feasible(nodes, pods, pod) == {"b1"}
    # With fewer domains than minDomains the global minimum counts as 0.
    spread = _spread()
    spread[0]["minDomains"] = 2
    two_in_a = [bound(pod_obj(f"w{i}", labels={"app": "web"}), "a1") for i in range(2)]
    pod = pod_obj("p", labels={"app": "web"}, topologySpreadConstraints=spread)
    result = schedule([nodes[0], nodes[3]], two_in_a, pod)
    assert result.diagnosis is not None
    assert result.diagnosis.message() == (
        "0/2 nodes are available: 1 node(s) didn't match pod topology spread constraints, "
        "1 node(s) didn't match pod topology spread constraints (missing required label)."
    )


def test_topology_spread_soft_prefers_emptier_domain() -> None:
    nodes = [node_obj("a1", labels={ZONE: "a"}), node_obj("b1", labels={ZONE: "b"})]
    pods = [bound(pod_obj(f"w{i}", labels={"app": "web"}), "a1") for i in range(3)]
    pod = pod_obj("p", labels={"app": "web"}, topologySpreadConstraints=_spread(when="ScheduleAnyway"))
    got = scores(nodes, pods, pod)
    assert got["b1"] > got["a1"]


def test_topology_spread_spreads_a_batch_evenly() -> None:
    nodes = [node_obj(f"n{z}{i}", labels={ZONE: z}) for z in "abc" for i in range(2)]
    alg = algorithm()
    snap_pods: list[dict] = []
    placed: dict[str, int] = {}
    for i in range(9):
        pod = pod_obj(f"p{i}", labels={"app": "web"}, topologySpreadConstraints=_spread())
        snap = Snapshot.build(nodes, snap_pods)
        result = alg.schedule(CycleState(), PodInfo(pod), snap)
        zone = result.node[1]
        placed[zone] = placed.get(zone, 0) + 1
        snap_pods.append(bound(pod, result.node))
    assert placed == {"a": 3, "b": 3, "c": 3}


# -- InterPodAffinity -------------------------------------------------------------------------------
def _term(labels: dict[str, str], key: str = "kubernetes.io/hostname") -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def test_required_pod_affinity() -> None:
    nodes = [node_obj("a", labels={ZONE: "a"}), node_obj("b", labels={ZONE: "b"})]
    pods = [bound(pod_obj("db", labels={"app": "db"}), "b")]
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term({"app": "db"}, ZONE)]}}
    assert feasible(nodes, pods, pod_obj("p", affinity=affinity)) == {"b"}
    # No matching pod anywhere: only a pod matching its own terms may start the group.
    assert feasible(nodes, [], pod_obj("p", affinity=affinity)) == set()
    assert feasible(nodes, [], pod_obj("p", labels={"app": "db"}, affinity=affinity)) == {"a", "b"}
    result = schedule(nodes, [], pod_obj("p", affinity=affinity))
    assert result.diagnosis is not None
    assert result.diagnosis.message() == "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."


def test_required_anti_affinity_both_ways() -> None:
    nodes = [node_obj("a"), node_obj("b")]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term({"app": "web"})]}}
    pods = [bound(pod_obj("w1", labels={"app": "web"}, affinity=anti), "a")]
    assert feasible(nodes, pods, pod_obj("p", labels={"app": "web"}, affinity=anti)) == {"b"}
    # The placed pod's anti-affinity keeps a matching newcomer away even without its own terms.
    assert feasible(nodes, pods, pod_obj("p", labels={"app": "web"})) == {"b"}
    assert feasible(nodes, pods, pod_obj("p", labels={"app": "other"})) == {"a", "b"}


def test_preferred_pod_affinity_and_anti_affinity_score() -> None:
    nodes = [node_obj("a"), node_obj("b")]
    pods = [bound(pod_obj("cache", labels={"app": "cache"}), "a")]
    near = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": _term({"app": "cache"})}]}}
    away = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": _term({"app": "cache"})}]}}
    assert schedule(nodes, pods, pod_obj("p", affinity=near)).node == "a"
    assert schedule(nodes, pods, pod_obj("p", affinity=away)).node == "b"


# -- the core -------------------------------------------------------------------------------------
def test_feasible_nodes_to_find_is_adaptive() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(1000) == 420
    assert num_feasible_nodes_to_find(5000) == 500
    assert num_feasible_nodes_to_find(100000) == 5000
    assert num_feasible_nodes_to_find(5000, 100) == 5000
    assert num_feasible_nodes_to_find(500, 1) == 100


def test_sampling_stops_early_and_rotates() -> None:
    nodes = [node_obj(f"n{i:04d}") for i in range(1000)]
    alg = algorithm()
    snap = Snapshot.build(nodes)
    first = alg.schedule(CycleState(), PodInfo(pod_obj("p")), snap)
    assert first.evaluated == 420 and first.feasible == 420
    second = alg.schedule(CycleState(), PodInfo(pod_obj("q")), snap)
    assert second.evaluated == 420
    assert alg.next_start == 840


def test_ties_broken_at_random() -> None:
    nodes = [node_obj(f"n{i}") for i in range(4)]
    chosen = {schedule(nodes, [], pod_obj("p"), None).node}
    alg = algorithm(seed=7)
    snap = Snapshot.build(nodes)
    for i in range(40):
        chosen.add(alg.schedule(CycleState(), PodInfo(pod_obj(f"p{i}")), snap).node)
    assert len(chosen) > 1

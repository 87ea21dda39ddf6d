"""The cache: incremental node and pod updates, assumed pods, the snapshot, the config."""

from __future__ import annotations

import pytest

from sampan.scheduler.cache import Cache
from sampan.scheduler.config import SchedulerConfig
from sampan.scheduler.framework import Framework, Handle
from sampan.scheduler.types import PodInfo

from tests.scheduler.helpers import bound, node_obj, pod_obj


def test_pods_add_up_on_their_node() -> None:
    cache = Cache()
    cache.add_node(node_obj("n", cpu="4", memory="8Gi", pods=10))
    cache.add_pod(bound(pod_obj("a", cpu="1", memory="1Gi"), "n"))
    cache.add_pod(bound(pod_obj("b", cpu="500m"), "n"))
    info = cache.snapshot().get("n")
    assert info is not None
    assert (info.requested.cpu, info.requested.memory, len(info.pods)) == (1500, 1024**3, 2)
    assert (info.free_cpu, info.free_pods) == (2500, 8)
    # Upstream's scoring defaults for a container without requests: 100m cpu, 200Mi memory.
    assert info.non_zero_cpu == 1500 and info.non_zero_memory == 1024**3 + 200 * 1024**2
    cache.remove_pod("default/a")
    assert (info.requested.cpu, len(info.pods)) == (500, 1)


def test_assume_confirm_and_forget() -> None:
    cache = Cache()
    cache.add_node(node_obj("n"))
    pod = pod_obj("p", cpu="1")
    cache.assume(PodInfo(pod), "n")
    info = cache.nodes["n"]
    assert cache.is_assumed("default/p") and info.requested.cpu == 1000
    cache.forget("default/p")
    assert not cache.is_assumed("default/p") and info.requested.cpu == 0
    cache.assume(PodInfo(pod), "n")
    cache.add_pod(bound(pod, "n"))  # the informer confirms the binding
    assert not cache.is_assumed("default/p") and info.requested.cpu == 1000 and len(info.pods) == 1
    cache.forget("default/p")  # a confirmed pod is not forgotten
    assert info.requested.cpu == 1000


def test_pod_seen_before_its_node_and_node_removal() -> None:
    cache = Cache()
    cache.add_pod(bound(pod_obj("p", cpu="1"), "late"))
    assert cache.snapshot().nodes == []
    cache.add_node(node_obj("late"))
    snap = cache.snapshot()
    assert [n.name for n in snap.nodes] == ["late"] and snap.nodes[0].requested.cpu == 1000
    cache.remove_node("late")
    assert cache.snapshot().nodes == [] and "late" in cache.nodes  # kept while pods remain
    cache.remove_pod("default/p")
    assert "late" not in cache.nodes


def test_snapshot_is_reused_until_the_node_set_changes() -> None:
    cache = Cache()
    cache.add_node(node_obj("a"))
    first = cache.snapshot()
    cache.add_pod(bound(pod_obj("p"), "a"))
    cache.update_node(node_obj("a", cpu="8"))
    assert cache.snapshot() is first and first.nodes[0].allocatable.cpu == 8000
    cache.add_node(node_obj("b"))
    assert cache.snapshot() is not first


def test_image_and_affinity_counts() -> None:
    cache = Cache()
    image = {"names": ["nginx:1.25"], "sizeBytes": 100}
    cache.add_node(node_obj("a", images=[image]))
    cache.add_node(node_obj("b", images=[image]))
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    cache.add_pod(bound(pod_obj("p", affinity=anti), "a"))
    snap = cache.snapshot()
    assert snap.image_nodes == {"nginx:1.25": 2}
    assert (snap.affinity_pod_count, snap.anti_affinity_pod_count) == (1, 1)
    assert [n.name for n in snap.nodes_with_anti_affinity_pods()] == ["a"]
    cache.remove_node("b")
    assert cache.snapshot().image_nodes == {"nginx:1.25": 1}
    cache.remove_pod("default/p")
    snap = cache.snapshot()
    assert snap.nodes_with_anti_affinity_pods() == [] and snap.nodes_with_affinity_pods() == []
    assert (snap.affinity_pod_count, snap.anti_affinity_pod_count) == (0, 0)


def test_config_from_kube_scheduler_configuration() -> None:
    doc = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "percentageOfNodesToScore": 30,
        "profiles": [{
            "schedulerName": "default-scheduler",
            "plugins": {
                "multiPoint": {"disabled": [{"name": "ImageLocality"}]},
                "score": {"disabled": [{"name": "NodeResourcesBalancedAllocation"}],
                          "enabled": [{"name": "NodeResourcesFit", "weight": 5}]},
            },
            "pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}],
        }],
    }
    cfg = SchedulerConfig.from_dict(doc)
    assert cfg.percentage_of_nodes_to_score == 30
    fw = Framework.build(cfg, Handle())
    scored = {p.name: w for p, w in fw.score}
    assert "ImageLocality" not in fw.plugins
    assert "NodeResourcesBalancedAllocation" not in scored
    assert scored["NodeResourcesFit"] == 5
    assert fw.plugins["NodeResourcesFit"].strategy == "MostAllocated"  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        Framework.build(SchedulerConfig.from_dict({"profiles": [{"plugins": {"multiPoint": {
            "enabled": [{"name": "NoSuchPlugin"}]}}}]}), Handle())

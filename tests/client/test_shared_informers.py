"""The server's controllers and scheduler share one informer per collection, holding compact
read-only objects; with mutation checks on, a Deployment still goes from creation through
scheduling to available without any component changing a cached object in place."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sampan.client.compact import FrozenDict
from sampan.client.interface import DEPLOYMENTS, NODES, PODS
from sampan.client.local import LocalClient
from tests.harness import api_server, eventually


def node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


async def test_one_compact_cache_drives_controllers_and_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SAMPAN_CHECK_INFORMER_MUTATIONS", "1")
    caplog.set_level(logging.WARNING)
    async with api_server(tmp_path, controllers=None, scheduler=True, node_monitor_grace_period=3600.0) as server:
        assert server.scheduler is not None and server.controllers is not None
        shared = server.controllers.context.informers
        assert server.scheduler.informers is shared and server.informers is shared
        pod_informers = [i for i in shared.informers() if i.resource == PODS]
        assert len(pod_informers) == 1

        kubelet = LocalClient(server.registry, field_manager="kubelet")
        for name in ("n1", "n2"):
            created = await kubelet.create(NODES, node(name))
            created["status"] = node(name)["status"]
            await kubelet.update(NODES, created, subresource="status")
        await kubelet.create(DEPLOYMENTS, {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "pause"}]}}}}, "default")

        async def bound() -> list[dict[str, Any]]:
            pods = (await kubelet.list(PODS, "default", label_selector="app=web"))["items"]
            return pods if len(pods) == 3 and all(p["spec"].get("nodeName") for p in pods) else []

        for pod in await eventually(bound, timeout=20):
            pod["status"].update(phase="Running", conditions=[
                {"type": t, "status": "True"} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")])
            await kubelet.update(PODS, pod, subresource="status")

        async def available() -> bool:
            dep = await kubelet.get(DEPLOYMENTS, "web", "default")
            return (dep.get("status") or {}).get("availableReplicas") == 3

        await eventually(available, timeout=20)
        cached = pod_informers[0].list("default")
        assert len(cached) == 3 and all(type(p) is FrozenDict for p in cached)
        assert all("managedFields" not in p["metadata"] for p in cached)
    mutated = [r for r in caplog.records if "read-only" in r.getMessage() or r.exc_info
               and "CachedObjectMutated" in repr(r.exc_info[1])]
    assert not mutated, mutated[0].getMessage()

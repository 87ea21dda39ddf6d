"""Scheduler tests run the real scheduler in-process over a registry on the memory store,
through the in-process client (same admission and validation as the server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sampan.client.interface import EVENTS, NODES, PODS
from sampan.client.local import LocalClient
from sampan.registry.registry import Registry
from sampan.scheduler import Scheduler
from tests.harness import eventually  # noqa: F401 - re-exported for the tests

Obj = dict[str, Any]


@pytest.fixture(autouse=True)
def frozen_informer_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Informer objects are shared with the controllers (and parts of them between objects):
    in these tests they are frozen, so the scheduler changing one in place fails loudly."""
    monkeypatch.setenv("SAMPAN_CHECK_INFORMER_MUTATIONS", "1")


def node_obj(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    images: list[Obj] | None = None,
    extra: dict[str, str] | None = None,
) -> Obj:
    allocatable = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi", **(extra or {})}
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    status: Obj = {
        "capacity": dict(allocatable),
        "allocatable": allocatable,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }
    if images:
        status["images"] = images
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": status,
    }


def pod_obj(
    name: str,
    cpu: str | None = None,
    memory: str | None = None,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: Obj = {"name": "c", "image": "registry.example/app:1"}
    if requests:
        container["resources"] = {"requests": requests}
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [container], **spec},
    }


@pytest.fixture
async def start_scheduler(registry: Registry) -> AsyncIterator[Callable[..., Awaitable[Scheduler]]]:
    started: list[Scheduler] = []

    async def start(config: Any = None) -> Scheduler:
        sched = Scheduler(LocalClient(registry, field_manager="default-scheduler"), config)
        # Short backoffs keep retries quick; the logic under test is the same.
        sched.queue.initial_backoff = sched.queue.max_backoff = 0.05
        await sched.start()
        started.append(sched)
        return sched

    yield start
    for sched in started:
        await sched.stop()


async def create_nodes(client: LocalClient, *nodes: Obj) -> None:
    for node in nodes:
        await client.create(NODES, node)


async def bound_node(client: LocalClient, name: str, namespace: str = "default") -> str:
    """Waits until the pod is bound; returns its node."""

    async def check() -> str:
        pod = await client.get(PODS, name, namespace)
        return pod["spec"].get("nodeName") or ""

    return await eventually(check)


async def events_for(client: LocalClient, name: str, reason: str, namespace: str = "default") -> list[Obj]:
    items = (await client.list(EVENTS, namespace))["items"]
    return [e for e in items if e["involvedObject"].get("name") == name and e["reason"] == reason]


async def wait_event(client: LocalClient, name: str, reason: str, namespace: str = "default") -> Obj:
    async def check() -> Obj | None:
        found = await events_for(client, name, reason, namespace)
        return found[-1] if found else None

    return await eventually(check)

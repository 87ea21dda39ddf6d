"""A stand-in kubelet for controller tests: binds pods to a node and marks them Running and
Ready through the pods/binding and status subresources, as a real node agent would.

``mark_running(client, pod)`` does one pod; ``FakeKubelet(client).start()`` keeps doing it for
every new pod (optionally only those ``accept`` approves) until ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sampan.client.interface import PODS, Client, is_conflict, is_not_found
from sampan.controllers.daemonset import node_of

Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def bind(client: Client, pod: Obj, node: str) -> None:
    meta = pod["metadata"]
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    await client.create(PODS, binding, meta["namespace"], subresource="binding")


async def set_ready(client: Client, pod: Obj, ready: bool = True, phase: str = "Running") -> Obj:
    meta = pod["metadata"]
    stamp = _now()
    flag = "True" if ready else "False"
    containers = (pod.get("spec") or {}).get("containers") or []
    status = {
        "phase": phase,
        "podIP": "10.42.0.10",
        "hostIP": "198.18.0.1",
        "startTime": stamp,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
        ],
        "containerStatuses": [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": stamp}},
            }
            for c in containers
        ],
    }
    return await client.patch(PODS, meta["name"], {"status": status}, "merge", meta["namespace"], subresource="status")


async def mark_running(client: Client, pod: Obj, node: str = "node-1", ready: bool = True) -> None:
    """Schedule (if needed) and start one pod; a pod deleted meanwhile is skipped."""
    try:
        if not (pod.get("spec") or {}).get("nodeName"):
            try:
                await bind(client, pod, node)
            except Exception as exc:
                if not is_conflict(exc):
                    raise  # a conflict means a scheduler bound it first: start it there
        await set_ready(client, pod, ready)
    except Exception as exc:
        if not is_not_found(exc):
            raise


def target_node(pod: Obj) -> str | None:
    """The node a pod is bound to, or the one its affinity pins it to (DaemonSet pods)."""
    return node_of(pod)


class FakeKubelet:
    """Polls pods: starts each new one (on its bound node, else on ``node``) and finishes
    graceful deletes."""

    def __init__(self, client: Client, node: str = "node-1", accept: Callable[[Obj], bool] | None = None) -> None:
        self.client = client
        self.node = node
        self.accept = accept or (lambda _pod: True)
        self.paused = False
        self._task: asyncio.Task[None] | None = None
        self._done: set[str] = set()

    def start(self) -> FakeKubelet:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.sweep()
            await asyncio.sleep(0.05)

    async def sweep(self) -> None:
        if self.paused:
            return
        pods = (await self.client.list(PODS))["items"]
        for pod in pods:
            meta = pod["metadata"]
            uid = meta["uid"]
            if meta.get("deletionTimestamp"):
                # A kubelet confirms a graceful delete once the containers stopped.
                with contextlib.suppress(Exception):
                    await self.client.delete(PODS, meta["name"], meta["namespace"], grace_period_seconds=0)
                continue
            if uid in self._done or not self.accept(pod):
                continue
            await mark_running(self.client, pod, target_node(pod) or self.node)
            self._done.add(uid)


class KubeletThread:
    """A FakeKubelet over HTTP in its own thread and event loop, for tests that drive a server
    process with kubectl: ``with KubeletThread(kubeconfig) as kubelet: ...``."""

    def __init__(self, kubeconfig: str, node: str = "node-1") -> None:
        self.kubeconfig = kubeconfig
        self.node = node
        self.kubelet: FakeKubelet | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeKubelet:
        from sampan.client.http import HttpClient

        self._thread.start()

        async def start() -> FakeKubelet:
            return FakeKubelet(HttpClient.from_kubeconfig(self.kubeconfig), self.node).start()

        self.kubelet = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self.kubelet

    def __exit__(self, *exc: object) -> None:
        kubelet = self.kubelet

        async def stop() -> None:
            if kubelet is not None:
                await kubelet.stop()
                await kubelet.client.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

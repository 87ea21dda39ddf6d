"""DefaultBinder: writes the pods/binding subresource, which sets spec.nodeName and the
PodScheduled condition in one server-side update."""

from __future__ import annotations

from sampan.client.interface import PODS
from sampan.scheduler.framework import ERROR, CycleState, Plugin, Status, plugin
from sampan.scheduler.types import PodInfo


@plugin
class DefaultBinder(Plugin):
    name = "DefaultBinder"

    async def bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            await self.handle.client.create(PODS, binding, namespace=pod.namespace, subresource="binding")
        except Exception as exc:  # noqa: BLE001 - reported as a status; the pod is retried
            return Status(ERROR, str(exc))
        return None

"""ImageLocality: prefer nodes that already have the pod's images, weighted by image size
and by how few nodes have them (so pods don't all pile onto one warm node)."""

from __future__ import annotations

from sampan.scheduler.cache import Snapshot
from sampan.scheduler.framework import MAX_NODE_SCORE, SKIPPED, CycleState, Plugin, Status, plugin
from sampan.scheduler.types import NodeInfo, PodInfo, _normalize_image

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


@plugin
class ImageLocality(Plugin):
    name = "ImageLocality"

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        containers = list(pod.spec.get("initContainers") or ()) + list(pod.spec.get("containers") or ())
        images = [_normalize_image(c["image"]) for c in containers if c.get("image")]
        if not any(i in snapshot.image_nodes for i in images):
            return SKIPPED
        total = max(len(snapshot.nodes), 1)
        spread = {i: snapshot.image_nodes.get(i, 0) / total for i in images}
        state[self.name] = (images, spread, MAX_CONTAINER_THRESHOLD * max(len(containers), 1))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        images, spread, max_threshold = state[self.name]
        total = 0
        for image in images:
            size = node.images.get(image)
            if size is not None:
                total += int(size * spread[image])
        total = min(max(total, MIN_THRESHOLD), max_threshold)
        return MAX_NODE_SCORE * (total - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)

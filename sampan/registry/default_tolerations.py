"""DefaultTolerationSeconds (upstream's admission plugin of that name): every new pod
tolerates the ``node.kubernetes.io/not-ready`` and ``node.kubernetes.io/unreachable``
NoExecute taints for 300 seconds unless it says otherwise, so pods on a failed node are
evicted after five minutes rather than at once. The server's hidden
``--default-not-ready-toleration-seconds`` / ``--default-unreachable-toleration-seconds``
(upstream's apiserver flags) change the 300."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sampan.registry.registry import Registry

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULT_SECONDS = 300


def add_default_tolerations(pod: dict[str, Any], not_ready_seconds: int, unreachable_seconds: int) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return  # validation reports it
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for key, seconds in ((NOT_READY, not_ready_seconds), (UNREACHABLE, unreachable_seconds)):
        # Any toleration of the key (or of every key) for NoExecute (or every effect) counts, as upstream.
        if not any(
            isinstance(t, dict) and t.get("key") in (key, "", None) and t.get("effect") in ("NoExecute", "", None)
            for t in tolerations
        ):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds})
    spec["tolerations"] = tolerations


def configure(registry: Registry, not_ready_seconds: int, unreachable_seconds: int) -> None:
    """Sets this registry's defaults (the pod strategy applies them on create)."""
    info = registry.table.get("", "v1", "pods")
    assert info is not None
    strategy = registry.strategy(info)
    strategy.toleration_seconds = (not_ready_seconds, unreachable_seconds)  # type: ignore[attr-defined]

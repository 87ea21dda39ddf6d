"""Upstream defaulting of built-in kinds, applied in place before validation."""

from __future__ import annotations

from typing import Callable

from sampan.api.defaults import core, other, pods, workloads

_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"

# (group, kind) -> defaulter; versions only matter where upstream's defaults differ.
_DEFAULTERS: dict[tuple[str, str], Callable[[dict], None]] = {
    ("", "Pod"): pods.pod,
    ("", "PodTemplate"): core.pod_template,
    ("", "ReplicationController"): core.replication_controller,
    ("", "Service"): core.service,
    ("", "Secret"): core.secret,
    ("", "Namespace"): core.namespace,
    ("", "Node"): core.node,
    ("", "PersistentVolumeClaim"): core.pvc,
    ("", "PersistentVolume"): core.pv,
    ("", "Endpoints"): core.endpoints,
    ("", "LimitRange"): core.limit_range,
    ("apps", "Deployment"): workloads.deployment,
    ("apps", "ReplicaSet"): workloads.replica_set,
    ("apps", "StatefulSet"): workloads.stateful_set,
    ("apps", "DaemonSet"): workloads.daemon_set,
    ("batch", "Job"): workloads.job,
    ("batch", "CronJob"): workloads.cron_job,
    ("networking.k8s.io", "NetworkPolicy"): other.network_policy,
    (_RBAC, "RoleBinding"): other.role_binding,
    (_RBAC, "ClusterRoleBinding"): other.role_binding,
    ("storage.k8s.io", "StorageClass"): other.storage_class,
    ("storage.k8s.io", "CSIDriver"): other.csi_driver,
    ("scheduling.k8s.io", "PriorityClass"): other.priority_class,
    ("discovery.k8s.io", "EndpointSlice"): other.endpoint_slice,
    (_ADMISSION, "ValidatingWebhookConfiguration"): other.validating_webhooks,
    (_ADMISSION, "MutatingWebhookConfiguration"): other.mutating_webhooks,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): other.crd,
}


def apply_defaults(obj: dict, group: str, version: str, kind: str) -> None:
    """Fills upstream's defaults into ``obj`` in place; unknown kinds are left alone."""
    if not isinstance(obj, dict):
        return
    if group == "autoscaling" and kind == "HorizontalPodAutoscaler":
        (other.hpa_v1 if version == "v1" else other.hpa_v2)(obj)
        return
    defaulter = _DEFAULTERS.get((group, kind))
    if defaulter:
        defaulter(obj)


__all__ = ["apply_defaults"]

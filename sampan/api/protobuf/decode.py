"""Entry point: turn a `application/vnd.kubernetes.protobuf` request body into a JSON-shaped dict."""

from __future__ import annotations

import json
from typing import Any

from . import access, autoscaling, core, pod, review, workloads
from .meta import DELETE_OPTIONS, UNKNOWN
from .schema import Message, decode_message
from .wire import ProtobufError

MAGIC = b"k8s\x00"
PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_KINDS: dict[str, dict[str, Message]] = {
    "v1": {
        "Namespace": core.NAMESPACE,
        "ConfigMap": core.CONFIG_MAP,
        "Secret": core.SECRET,
        "ServiceAccount": core.SERVICE_ACCOUNT,
        "Service": core.SERVICE,
        "ResourceQuota": core.RESOURCE_QUOTA,
        "Pod": pod.POD,
    },
    "apps/v1": {"Deployment": workloads.DEPLOYMENT},
    "batch/v1": {"Job": workloads.JOB, "CronJob": workloads.CRON_JOB},
    "autoscaling/v1": {"HorizontalPodAutoscaler": autoscaling.HORIZONTAL_POD_AUTOSCALER_V1},
    "rbac.authorization.k8s.io/v1": {
        "Role": access.ROLE,
        "ClusterRole": access.CLUSTER_ROLE,
        "RoleBinding": access.ROLE_BINDING,
        "ClusterRoleBinding": access.ROLE_BINDING,
    },
    "scheduling.k8s.io/v1": {"PriorityClass": access.PRIORITY_CLASS},
    "policy/v1": {"PodDisruptionBudget": access.POD_DISRUPTION_BUDGET, "Eviction": access.EVICTION},
    "networking.k8s.io/v1": {"Ingress": access.INGRESS},
    "authentication.k8s.io/v1": {
        "TokenRequest": review.TOKEN_REQUEST,
        "TokenReview": review.TOKEN_REVIEW,
        "SelfSubjectReview": review.SELF_SUBJECT_REVIEW,
    },
    "authentication.k8s.io/v1beta1": {"SelfSubjectReview": review.SELF_SUBJECT_REVIEW},
    "authorization.k8s.io/v1": {
        "SelfSubjectAccessReview": review.SELF_SUBJECT_ACCESS_REVIEW,
        "SelfSubjectRulesReview": review.SELF_SUBJECT_RULES_REVIEW,
        "SubjectAccessReview": review.SUBJECT_ACCESS_REVIEW,
        "LocalSubjectAccessReview": review.SUBJECT_ACCESS_REVIEW,
    },
}

# meta/v1 option kinds are registered in every group version.
_EVERY_VERSION = {"DeleteOptions": DELETE_OPTIONS}


def message_for(api_version: str, kind: str) -> Message:
    """The message table for (apiVersion, kind), or ProtobufError if none is registered."""
    found = _KINDS.get(api_version, {}).get(kind) or _EVERY_VERSION.get(kind)
    if found is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    return found


def decode_request_body(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf request body (magic + runtime.Unknown envelope)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body: missing the k8s\\x00 prefix")
    envelope = decode_message(UNKNOWN, body[len(MAGIC):])
    type_meta = envelope.get("typeMeta", {})
    api_version = type_meta.get("apiVersion", "")
    kind = type_meta.get("kind", "")
    if not kind or not api_version:
        raise ProtobufError("protobuf envelope has no apiVersion/kind")
    if envelope.get("contentEncoding"):
        raise ProtobufError(f'unsupported content encoding "{envelope["contentEncoding"]}"')
    raw: bytes = envelope.get("raw", b"")
    content_type = envelope.get("contentType", "")
    if content_type.startswith("application/json"):
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise ProtobufError(f"embedded JSON object is malformed: {exc}") from None
        if not isinstance(obj, dict):
            raise ProtobufError("embedded JSON object is not an object")
        return {"kind": kind, "apiVersion": api_version, **obj}
    if content_type not in ("", PROTOBUF_CONTENT_TYPE):
        raise ProtobufError(f'unsupported embedded content type "{content_type}"')
    message = message_for(api_version, kind)
    return {"kind": kind, "apiVersion": api_version, **decode_message(message, raw)}

"""Dispatch of semantic validation by kind: name rules, scope, per-kind and update rules."""

from __future__ import annotations

from typing import Callable

from sampan.api.validation import core, crd, names, workloads
from sampan.api.validation.field import Cause
from sampan.api.validation.meta import validate_object_meta, validate_object_meta_update
from sampan.api.validation.structural import same_json
from sampan.api.validation.update import UPDATE_RULES

CLUSTER_SCOPED = {
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"), ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"), ("storage.k8s.io", "CSIDriver"), ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"), ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"), ("networking.k8s.io", "IPAddress"), ("networking.k8s.io", "ServiceCIDR"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("certificates.k8s.io", "CertificateSigningRequest"), ("node.k8s.io", "RuntimeClass"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"), ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("authentication.k8s.io", "TokenReview"), ("authentication.k8s.io", "SelfSubjectReview"),
    ("authorization.k8s.io", "SubjectAccessReview"), ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
}

# Kinds whose names are stricter than a DNS subdomain (or looser: RBAC path segments).
NAME_RULES = {
    ("", "Namespace"): "label",
    ("", "Service"): "dns1035",
    ("apps", "StatefulSet"): "label",
    ("rbac.authorization.k8s.io", "Role"): "path",
    ("rbac.authorization.k8s.io", "ClusterRole"): "path",
    ("rbac.authorization.k8s.io", "RoleBinding"): "path",
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): "path",
}

KIND_RULES: dict[tuple[str, str], Callable[[dict], list[Cause]]] = {
    ("", "Pod"): core.validate_pod,
    ("", "PodTemplate"): core.validate_pod_template_kind,
    ("", "ReplicationController"): core.validate_replication_controller,
    ("", "Service"): core.validate_service,
    ("", "ConfigMap"): core.validate_config_map,
    ("", "Secret"): core.validate_secret,
    ("", "Namespace"): core.validate_namespace,
    ("", "Node"): core.validate_node,
    ("apps", "Deployment"): workloads.validate_deployment,
    ("apps", "ReplicaSet"): workloads.validate_replica_set,
    ("apps", "StatefulSet"): workloads.validate_stateful_set,
    ("apps", "DaemonSet"): workloads.validate_daemon_set,
    ("batch", "Job"): workloads.validate_job,
    ("batch", "CronJob"): workloads.validate_cron_job,
    ("networking.k8s.io", "Ingress"): workloads.validate_ingress,
    ("networking.k8s.io", "NetworkPolicy"): workloads.validate_network_policy,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd.validate_crd,
}


# Kinds whose rule reads nothing but ``spec``: an update that leaves the spec as stored
# (a status write, a label change) need not check it again. Every pod status write did.
_SPEC_ONLY_RULES = {("", "Pod")}
# The metadata fields validate_object_meta reads.
_META_RULE_KEYS = ("name", "generateName", "namespace", "generation", "labels", "annotations", "finalizers",
                   "ownerReferences")


def is_namespaced(group: str, kind: str) -> bool:
    return (group, kind) not in CLUSTER_SCOPED


def validate_builtin(obj: dict, group: str, kind: str, old: dict | None = None) -> list[Cause]:
    """Semantic validation of a built-in object (expects defaults already applied).

    Causes carry upstream's reasons and messages; the caller answers 422 Invalid
    (see ``field.invalid_status_message`` for the Status message).
    """
    name_fn = names.name_checker(NAME_RULES.get((group, kind), "subdomain"))
    meta = obj.get("metadata")
    old_meta = old.get("metadata") if old is not None else None
    errs: list[Cause]
    if isinstance(meta, dict) and isinstance(old_meta, dict) and all(
            same_json(meta.get(k), old_meta.get(k)) for k in _META_RULE_KEYS):
        errs = []  # what the rules read is as stored (and was checked then)
    else:
        # apiextensions objects use the generic ObjectMeta rules, not the core ones.
        errs = validate_object_meta(meta, is_namespaced(group, kind), name_fn, core_rules=group != "apiextensions.k8s.io")
    rule = KIND_RULES.get((group, kind))
    if rule and not (old is not None and (group, kind) in _SPEC_ONLY_RULES and same_json(obj.get("spec"), old.get("spec"))):
        errs += rule(obj)
    if old is not None:
        errs += validate_object_meta_update(meta if isinstance(meta, dict) else {}, old.get("metadata") or {})
        update_rule = UPDATE_RULES.get((group, kind))
        if update_rule:
            errs += update_rule(obj, old)
    return errs

"""Cluster plumbing kinds: rbac, policy, scheduling, storage, coordination, node, admission,
certificates, autoscaling and flow control."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .common import AGE, NAME, Column, Obj, age, as_int, dig, int_or_string, meta, name, quantity, register
from .humanize import human_duration

# --- rbac ------------------------------------------------------------------------------

def _binding_columns(kind: str) -> list[Column]:
    return [
        NAME,
        Column("Role", doc=(f"rbac.v1.{kind}", "roleRef")),
        AGE,
        Column("Users", doc=f"Users in the {kind[0].lower() + kind[1:]}", priority=1),
        Column("Groups", doc=f"Groups in the {kind[0].lower() + kind[1:]}", priority=1),
        Column("ServiceAccounts", doc=f"ServiceAccounts in the {kind[0].lower() + kind[1:]}", priority=1),
    ]


def _binding_row(binding: Obj, now: datetime) -> list[Any]:
    ref = binding.get("roleRef") or {}
    users, groups, sas = [], [], []
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "User":
            users.append(subject.get("name", ""))
        elif kind == "Group":
            groups.append(subject.get("name", ""))
        elif kind == "ServiceAccount":
            sas.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
    return [
        name(binding), f"{ref.get('kind', '')}/{ref.get('name', '')}", age(binding, now),
        ", ".join(users), ", ".join(groups), ", ".join(sas),
    ]


register("rbac.authorization.k8s.io", "rolebindings", _binding_columns("RoleBinding"))(_binding_row)
register("rbac.authorization.k8s.io", "clusterrolebindings", _binding_columns("ClusterRoleBinding"))(_binding_row)


# --- policy, scheduling, coordination, node --------------------------------------------

PDB_COLUMNS = [
    NAME,
    Column("Min Available", doc="The minimum number of pods that must be available."),
    Column("Max Unavailable", doc="The maximum number of pods that may be unavailable."),
    Column("Allowed Disruptions", "integer", doc="Calculated number of pods that may be disrupted at this time."),
    AGE,
]


@register("policy", "poddisruptionbudgets", PDB_COLUMNS)
def pdb_row(pdb: Obj, now: datetime) -> list[Any]:
    spec = pdb.get("spec") or {}
    min_available = int_or_string(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A"
    max_unavailable = int_or_string(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A"
    return [name(pdb), min_available, max_unavailable, as_int(dig(pdb, "status", "disruptionsAllowed")),
            age(pdb, now)]


PC = "scheduling.v1.PriorityClass"
PRIORITY_CLASS_COLUMNS = [
    NAME,
    Column("Value", "integer", doc=(PC, "value")),
    Column("Global-Default", "boolean", doc=(PC, "globalDefault")),
    AGE,
    Column("PreemptionPolicy", doc=(PC, "preemptionPolicy")),
]


@register("scheduling.k8s.io", "priorityclasses", PRIORITY_CLASS_COLUMNS)
def priority_class_row(pc: Obj, now: datetime) -> list[Any]:
    return [name(pc), as_int(pc.get("value")), bool(pc.get("globalDefault")), age(pc, now),
            pc.get("preemptionPolicy") or ""]


# The scale subresource (kubectl get --subresource=scale); not a resource of its own.
SCALE_COLUMNS = [NAME, Column("Desired", "integer", doc=("autoscaling.v1.ScaleSpec", "replicas")),
                 Column("Available", "integer", doc=("autoscaling.v1.ScaleStatus", "replicas"))]


@register("autoscaling", "scales", SCALE_COLUMNS)
def scale_row(scale: Obj, now: datetime) -> list[Any]:
    return [name(scale), as_int(dig(scale, "spec", "replicas")), as_int(dig(scale, "status", "replicas"))]


@register("coordination.k8s.io", "leases",
          [NAME, Column("Holder", doc=("coordination.v1.LeaseSpec", "holderIdentity")), AGE])
def lease_row(lease: Obj, now: datetime) -> list[Any]:
    return [name(lease), dig(lease, "spec", "holderIdentity", default=""), age(lease, now)]


@register("node.k8s.io", "runtimeclasses", [NAME, Column("Handler", doc=("node.v1.RuntimeClass", "handler")), AGE])
def runtime_class_row(rc: Obj, now: datetime) -> list[Any]:
    return [name(rc), rc.get("handler", ""), age(rc, now)]


# --- storage ---------------------------------------------------------------------------

SC = "storage.v1.StorageClass"
STORAGE_CLASS_COLUMNS = [
    NAME,
    Column("Provisioner", doc=(SC, "provisioner")),
    Column("ReclaimPolicy", doc=(SC, "reclaimPolicy")),
    Column("VolumeBindingMode", doc=(SC, "volumeBindingMode")),
    Column("AllowVolumeExpansion", doc=(SC, "allowVolumeExpansion")),
    AGE,
]
_DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")


@register("storage.k8s.io", "storageclasses", STORAGE_CLASS_COLUMNS)
def storage_class_row(sc: Obj, now: datetime) -> list[Any]:
    annotations = meta(sc).get("annotations") or {}
    label = name(sc)
    if any(annotations.get(key) == "true" for key in _DEFAULT_CLASS):
        label += " (default)"
    return [label, sc.get("provisioner", ""), sc.get("reclaimPolicy") or "Delete",
            sc.get("volumeBindingMode") or "Immediate", bool(sc.get("allowVolumeExpansion")), age(sc, now)]


@register("storage.k8s.io", "volumeattributesclasses",
          [NAME, Column("DriverName", doc=("storage.v1beta1.VolumeAttributesClass", "driverName")), AGE])
def vac_row(vac: Obj, now: datetime) -> list[Any]:
    label = name(vac)
    if (meta(vac).get("annotations") or {}).get("storage.kubernetes.io/is-default-class") == "true":
        label += " (default)"
    return [label, vac.get("driverName", ""), age(vac, now)]


@register("storage.k8s.io", "csinodes",
          [NAME, Column("Drivers", "integer", doc="Drivers indicates the number of CSI drivers registered on the node"),
           AGE])
def csinode_row(node: Obj, now: datetime) -> list[Any]:
    return [name(node), len(dig(node, "spec", "drivers", default=[])), age(node, now)]


CSI_SPEC = "storage.v1.CSIDriverSpec"
CSI_DRIVER_COLUMNS = [
    NAME,
    Column("AttachRequired", "boolean", doc=(CSI_SPEC, "attachRequired")),
    Column("PodInfoOnMount", "boolean", doc=(CSI_SPEC, "podInfoOnMount")),
    Column("StorageCapacity", "boolean", doc=(CSI_SPEC, "storageCapacity")),
    Column("TokenRequests", doc=(CSI_SPEC, "tokenRequests")),
    Column("RequiresRepublish", "boolean", doc=(CSI_SPEC, "requiresRepublish")),
    Column("Modes", doc=(CSI_SPEC, "volumeLifecycleModes")),
    AGE,
]


@register("storage.k8s.io", "csidrivers", CSI_DRIVER_COLUMNS)
def csidriver_row(drv: Obj, now: datetime) -> list[Any]:
    spec = drv.get("spec") or {}
    tokens = spec.get("tokenRequests")
    return [
        name(drv), spec.get("attachRequired", True) is not False, bool(spec.get("podInfoOnMount")),
        bool(spec.get("storageCapacity")),
        "<unset>" if tokens is None else ",".join(t.get("audience", "") for t in tokens),
        bool(spec.get("requiresRepublish")), ",".join(spec.get("volumeLifecycleModes") or []) or "<none>",
        age(drv, now),
    ]


VA = "storage.v1.VolumeAttachmentSpec"
VOLUME_ATTACHMENT_COLUMNS = [
    NAME,
    Column("Attacher", format="name", doc=(VA, "attacher")),
    Column("PV", doc=("storage.v1.VolumeAttachmentSource", "persistentVolumeName")),
    Column("Node", doc=(VA, "nodeName")),
    Column("Attached", "boolean", doc=("storage.v1.VolumeAttachmentStatus", "attached")),
    AGE,
]


@register("storage.k8s.io", "volumeattachments", VOLUME_ATTACHMENT_COLUMNS)
def volume_attachment_row(va: Obj, now: datetime) -> list[Any]:
    spec = va.get("spec") or {}
    return [name(va), spec.get("attacher", ""), dig(spec, "source", "persistentVolumeName", default=""),
            spec.get("nodeName", ""), bool(dig(va, "status", "attached")), age(va, now)]


# --- admission, certificates -----------------------------------------------------------

WEBHOOK_COLUMNS = [
    NAME,
    Column("Webhooks", "integer", doc="Webhooks indicates the number of webhooks registered in this configuration"),
    AGE,
]


@register("admissionregistration.k8s.io", ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"),
          WEBHOOK_COLUMNS)
def webhook_row(cfg: Obj, now: datetime) -> list[Any]:
    return [name(cfg), len(cfg.get("webhooks") or []), age(cfg, now)]


CSR = "certificates.v1.CertificateSigningRequestSpec"
CSR_COLUMNS = [
    NAME, AGE,
    Column("SignerName", doc=(CSR, "signerName")),
    Column("Requestor", doc=(CSR, "request")),
    Column("RequestedDuration", doc=(CSR, "expirationSeconds")),
    Column("Condition", doc=("certificates.v1.CertificateSigningRequestStatus", "conditions")),
]


def csr_condition(csr: Obj) -> str:
    kinds = {c.get("type") for c in dig(csr, "status", "conditions", default=[])}
    text = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        text += ",Failed"
    if dig(csr, "status", "certificate"):
        text += ",Issued"
    return text


@register("certificates.k8s.io", "certificatesigningrequests", CSR_COLUMNS)
def csr_row(csr: Obj, now: datetime) -> list[Any]:
    spec = csr.get("spec") or {}
    seconds = spec.get("expirationSeconds")
    return [name(csr), age(csr, now), spec.get("signerName") or "<none>", spec.get("username", ""),
            "<none>" if seconds is None else human_duration(as_int(seconds)), csr_condition(csr)]


# --- autoscaling -----------------------------------------------------------------------

HPA = "autoscaling.v2.HorizontalPodAutoscalerSpec"
HPA_COLUMNS = [
    NAME,
    Column("Reference", doc=(HPA, "scaleTargetRef")),
    Column("Targets", doc=(HPA, "metrics")),
    Column("MinPods", doc=(HPA, "minReplicas")),
    Column("MaxPods", doc=(HPA, "maxReplicas")),
    Column("Replicas", doc=("autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas")),
    AGE,
]


def _metric_text(spec: Obj, status: Obj | None) -> str:
    kind = spec.get("type")
    source_key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
                  "Object": "object", "External": "external"}.get(kind or "")
    if source_key is None:
        return "<unknown type>"
    source = spec.get(source_key) or {}
    target = source.get("target") or {}
    current = dig(status, source_key, "current", default=None) if status else None
    if kind in ("Resource", "ContainerResource"):
        prefix = f"{source.get('name', '')}: "
        if target.get("averageValue") is not None:
            now_value = quantity(current.get("averageValue")) if current else "<unknown>"
            return f"{prefix}{now_value}/{quantity(target['averageValue'])}"
        now_value = "<unknown>"
        if current and current.get("averageUtilization") is not None:
            now_value = f"{current['averageUtilization']}%"
        goal = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
        return f"{prefix}{now_value}/{goal}"
    if kind == "Pods":
        now_value = quantity(current.get("averageValue")) if current else "<unknown>"
        return f"{now_value}/{quantity(target.get('averageValue'))}"
    if target.get("averageValue") is not None:
        now_value = "<unknown>"
        if current and current.get("averageValue") is not None:
            now_value = quantity(current["averageValue"])
        return f"{now_value}/{quantity(target['averageValue'])} (avg)"
    now_value = quantity(current.get("value")) if current else "<unknown>"
    return f"{now_value}/{quantity(target.get('value'))}"


def hpa_targets(hpa: Obj) -> str:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    metrics = spec.get("metrics")
    current = status.get("currentMetrics") or []
    if metrics is None and spec.get("targetCPUUtilizationPercentage") is not None:
        # autoscaling/v1 shape: a single CPU utilization target.
        used = status.get("currentCPUUtilizationPercentage")
        return f"cpu: {'<unknown>' if used is None else f'{used}%'}/{spec['targetCPUUtilizationPercentage']}%"
    if not metrics:
        return "<none>"
    texts = [_metric_text(m, current[i] if i < len(current) else None) for i, m in enumerate(metrics)]
    shown = ", ".join(texts[:2])
    return f"{shown} + {len(texts) - 2} more..." if len(texts) > 2 else shown


@register("autoscaling", "horizontalpodautoscalers", HPA_COLUMNS)
def hpa_row(hpa: Obj, now: datetime) -> list[Any]:
    spec = hpa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = str(spec["minReplicas"]) if spec.get("minReplicas") is not None else "<unset>"
    return [name(hpa), f"{ref.get('kind', '')}/{ref.get('name', '')}", hpa_targets(hpa), min_pods,
            as_int(spec.get("maxReplicas")), as_int(dig(hpa, "status", "currentReplicas")), age(hpa, now)]


# --- flow control ----------------------------------------------------------------------

FS = "flowcontrol.v1.FlowSchemaSpec"
FLOW_SCHEMA_COLUMNS = [
    NAME,
    Column("PriorityLevel", doc=("flowcontrol.v1.PriorityLevelConfigurationReference", "name")),
    Column("MatchingPrecedence", doc=(FS, "matchingPrecedence")),
    Column("DistinguisherMethod", doc=(FS, "distinguisherMethod")),
    AGE,
    Column("MissingPL", doc="references a broken or non-existent PriorityLevelConfiguration"),
]


@register("flowcontrol.apiserver.k8s.io", "flowschemas", FLOW_SCHEMA_COLUMNS)
def flow_schema_row(fs: Obj, now: datetime) -> list[Any]:
    spec = fs.get("spec") or {}
    method = dig(spec, "distinguisherMethod", "type", default="<none>")
    dangling = next((c.get("status", "") for c in dig(fs, "status", "conditions", default=[])
                     if c.get("type") == "Dangling"), "?")
    return [name(fs), dig(spec, "priorityLevelConfiguration", "name", default=""),
            as_int(spec.get("matchingPrecedence")), method, age(fs, now), dangling]


PL = "flowcontrol.v1.QueuingConfiguration"
PRIORITY_LEVEL_COLUMNS = [
    NAME,
    Column("Type", doc=("flowcontrol.v1.PriorityLevelConfigurationSpec", "type")),
    Column("NominalConcurrencyShares",
           doc=("flowcontrol.v1.LimitedPriorityLevelConfiguration", "nominalConcurrencyShares")),
    Column("Queues", doc=(PL, "queues")),
    Column("HandSize", doc=(PL, "handSize")),
    Column("QueueLengthLimit", doc=(PL, "queueLengthLimit")),
    AGE,
]


@register("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", PRIORITY_LEVEL_COLUMNS)
def priority_level_row(pl: Obj, now: datetime) -> list[Any]:
    spec = pl.get("spec") or {}
    limited = spec.get("limited")
    shares: Any = "<none>"
    queues: Any = "<none>"
    hand: Any = "<none>"
    length: Any = "<none>"
    if limited is not None:
        shares = as_int(limited.get("nominalConcurrencyShares"))
        queuing = dig(limited, "limitResponse", "queuing")
        if queuing is not None:
            queues, hand = as_int(queuing.get("queues")), as_int(queuing.get("handSize"))
            length = as_int(queuing.get("queueLengthLimit"))
    return [name(pl), spec.get("type", ""), shares, queues, hand, length, age(pl, now)]


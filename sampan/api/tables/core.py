"""Core (v1) kinds other than pods and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .common import (AGE, CONTAINERS_WIDE, IMAGES_WIDE, NAME, Column, Obj, age, as_int, container_cells,
                     deleting, dig, format_labels, join_host_port, lb_ingress, meta, name, quantity,
                     register)

SVC_SPEC = "core.v1.ServiceSpec"
NODE_INFO = "core.v1.NodeSystemInfo"
PV_SPEC = "core.v1.PersistentVolumeSpec"
PVC_STATUS = "core.v1.PersistentVolumeClaimStatus"


# --- nodes -----------------------------------------------------------------------------

NODE_COLUMNS = [
    NAME,
    Column("Status", doc="The status of the node"),
    Column("Roles", doc="The roles of the node"),
    AGE,
    Column("Version", doc=(NODE_INFO, "kubeletVersion")),
    Column("Internal-IP", doc=("core.v1.NodeStatus", "addresses"), priority=1),
    Column("External-IP", doc=("core.v1.NodeStatus", "addresses"), priority=1),
    Column("OS-Image", doc=(NODE_INFO, "osImage"), priority=1),
    Column("Kernel-Version", doc=(NODE_INFO, "kernelVersion"), priority=1),
    Column("Container-Runtime", doc=(NODE_INFO, "containerRuntimeVersion"), priority=1),
]


def node_roles(node: Obj) -> list[str]:
    """Roles from ``node-role.kubernetes.io/<role>`` keys and the ``kubernetes.io/role`` value."""
    roles = set()
    for key, value in (meta(node).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def _node_address(node: Obj, kind: str) -> str:
    for address in dig(node, "status", "addresses", default=[]):
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


@register("", "nodes", NODE_COLUMNS)
def node_row(node: Obj, now: datetime) -> list[Any]:
    status: list[str] = []
    ready = [c for c in dig(node, "status", "conditions", default=[]) if c.get("type") == "Ready"]
    if ready:
        # The last entry wins, as when conditions are collected into a map.
        status.append("Ready" if ready[-1].get("status") == "True" else "NotReady")
    else:
        status.append("Unknown")
    if dig(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    info = dig(node, "status", "nodeInfo", default={})
    return [
        name(node), ",".join(status), ",".join(node_roles(node)) or "<none>", age(node, now),
        info.get("kubeletVersion", ""),
        _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


# --- namespaces, configmaps, secrets, service accounts ---------------------------------

@register("", "namespaces", [NAME, Column("Status", doc="The status of the namespace"), AGE])
def namespace_row(ns: Obj, now: datetime) -> list[Any]:
    return [name(ns), dig(ns, "status", "phase", default=""), age(ns, now)]


@register("", "configmaps", [NAME, Column("Data", doc=("core.v1.ConfigMap", "data")), AGE])
def configmap_row(cm: Obj, now: datetime) -> list[Any]:
    return [name(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), age(cm, now)]


@register("", "secrets", [NAME, Column("Type", doc=("core.v1.Secret", "type")),
                          Column("Data", doc=("core.v1.Secret", "data")), AGE])
def secret_row(secret: Obj, now: datetime) -> list[Any]:
    return [name(secret), secret.get("type", ""), len(secret.get("data") or {}), age(secret, now)]


@register("", "serviceaccounts", [NAME, Column("Secrets", doc=("core.v1.ServiceAccount", "secrets")), AGE])
def serviceaccount_row(sa: Obj, now: datetime) -> list[Any]:
    return [name(sa), len(sa.get("secrets") or []), age(sa, now)]


# --- services and endpoints ------------------------------------------------------------

SERVICE_COLUMNS = [
    NAME,
    Column("Type", doc=(SVC_SPEC, "type")),
    Column("Cluster-IP", doc=(SVC_SPEC, "clusterIP")),
    Column("External-IP", doc=(SVC_SPEC, "externalIPs")),
    Column("Port(s)", doc=(SVC_SPEC, "ports")),
    AGE,
    Column("Selector", doc=(SVC_SPEC, "selector"), priority=1),
]


def service_external_ip(svc: Obj) -> str:
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        lb = lb_ingress(dig(svc, "status", "loadBalancer"))
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(ports: list[Obj] | None) -> str:
    pieces = []
    for port in ports or []:
        protocol = port.get("protocol") or "TCP"
        if as_int(port.get("nodePort")) > 0:
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or "<none>"


@register("", "services", SERVICE_COLUMNS)
def service_row(svc: Obj, now: datetime) -> list[Any]:
    spec = svc.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        name(svc), spec.get("type") or "ClusterIP", cluster_ips[0] if cluster_ips else "<none>",
        service_external_ip(svc), service_ports(spec.get("ports")), age(svc, now),
        format_labels(spec.get("selector")),
    ]


def format_endpoints(endpoints: Obj, limit: int = 3) -> str:
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:  # headless services may have no ports
            count += len(addresses)
            shown.extend(addresses[: max(0, limit - len(shown))])
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    break
                shown.append(join_host_port(ip, port.get("port")))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if count > limit else text


@register("", "endpoints", [NAME, Column("Endpoints", doc=("core.v1.Endpoints", "subsets")), AGE])
def endpoints_row(ep: Obj, now: datetime) -> list[Any]:
    return [name(ep), format_endpoints(ep), age(ep, now)]


# --- storage ---------------------------------------------------------------------------

_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
          ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: list[str] | None) -> str:
    modes = modes or []
    return ",".join(short for full, short in _MODES if full in modes)


PV_COLUMNS = [
    NAME,
    Column("Capacity", doc=(PV_SPEC, "capacity")),
    Column("Access Modes", doc=(PV_SPEC, "accessModes")),
    Column("Reclaim Policy", doc=(PV_SPEC, "persistentVolumeReclaimPolicy")),
    Column("Status", doc=("core.v1.PersistentVolumeStatus", "phase")),
    Column("Claim", doc=(PV_SPEC, "claimRef")),
    Column("StorageClass", doc="StorageClass of the pv"),
    Column("VolumeAttributesClass", doc="VolumeAttributesClass of the pv"),
    Column("Reason", doc=("core.v1.PersistentVolumeStatus", "reason")),
    AGE,
    Column("VolumeMode", doc=(PV_SPEC, "volumeMode"), priority=1),
]

_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


@register("", "persistentvolumes", PV_COLUMNS)
def pv_row(pv: Obj, now: datetime) -> list[Any]:
    spec = pv.get("spec") or {}
    claim = spec.get("claimRef")
    claim_text = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    storage_class = (meta(pv).get("annotations") or {}).get(_BETA_CLASS, spec.get("storageClassName") or "")
    phase = "Terminating" if deleting(pv) else dig(pv, "status", "phase", default="")
    return [
        name(pv), quantity(dig(spec, "capacity", "storage", default="0")), access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""), phase, claim_text, storage_class,
        spec.get("volumeAttributesClassName") or "<unset>", dig(pv, "status", "reason", default=""),
        age(pv, now), spec.get("volumeMode") or "<unset>",
    ]


PVC_COLUMNS = [
    NAME,
    Column("Status", doc=(PVC_STATUS, "phase")),
    Column("Volume", doc=("core.v1.PersistentVolumeClaimSpec", "volumeName")),
    Column("Capacity", doc=(PVC_STATUS, "capacity")),
    Column("Access Modes", doc=(PVC_STATUS, "accessModes")),
    Column("StorageClass", doc="StorageClass of the pvc"),
    Column("VolumeAttributesClass", doc="VolumeAttributesClass of the pvc"),
    AGE,
    Column("VolumeMode", doc=("core.v1.PersistentVolumeClaimSpec", "volumeMode"), priority=1),
]


@register("", "persistentvolumeclaims", PVC_COLUMNS)
def pvc_row(pvc: Obj, now: datetime) -> list[Any]:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    phase = "Terminating" if deleting(pvc) else status.get("phase", "")
    capacity = modes = ""
    # Capacity and modes are only meaningful once the claim is bound to a volume.
    if spec.get("volumeName"):
        modes = access_modes(status.get("accessModes"))
        capacity = quantity(dig(status, "capacity", "storage", default="0"))
    annotations = meta(pvc).get("annotations") or {}
    storage_class = annotations.get(_BETA_CLASS, spec.get("storageClassName") or "")
    return [
        name(pvc), phase, spec.get("volumeName", ""), capacity, modes, storage_class,
        spec.get("volumeAttributesClassName") or "<unset>", age(pvc, now), spec.get("volumeMode") or "<unset>",
    ]


# --- quotas, controllers, templates ----------------------------------------------------

QUOTA_COLUMNS = [
    NAME,
    Column("Request", doc="Request represents a minimum amount of cpu/memory that a container may consume."),
    Column("Limit", doc="Limits control the maximum amount of cpu/memory that a container may use "
                        "independent of contention on the node."),
    AGE,
]


@register("", "resourcequotas", QUOTA_COLUMNS)
def quota_row(quota: Obj, now: datetime) -> list[Any]:
    hard = dig(quota, "status", "hard", default={})
    used = dig(quota, "status", "used", default={})
    requests, limits = [], []
    for resource in sorted(hard):
        text = f"{resource}: {quantity(used.get(resource, '0'))}/{quantity(hard[resource])}"
        pieces = resource.split(".")
        (limits if len(pieces) > 1 and pieces[0] == "limits" else requests).append(text)
    return [name(quota), ", ".join(requests), ", ".join(limits), age(quota, now)]


RC_SPEC, RC_STATUS = "core.v1.ReplicationControllerSpec", "core.v1.ReplicationControllerStatus"
RC_COLUMNS = [
    NAME,
    Column("Desired", "integer", doc=(RC_SPEC, "replicas")),
    Column("Current", "integer", doc=(RC_STATUS, "replicas")),
    Column("Ready", "integer", doc=(RC_STATUS, "readyReplicas")),
    AGE, CONTAINERS_WIDE, IMAGES_WIDE,
    Column("Selector", doc=(RC_SPEC, "selector"), priority=1),
]


@register("", "replicationcontrollers", RC_COLUMNS)
def rc_row(rc: Obj, now: datetime) -> list[Any]:
    spec, status = rc.get("spec") or {}, rc.get("status") or {}
    names, images = container_cells(dig(spec, "template", "spec", "containers"))
    return [
        name(rc), as_int(spec.get("replicas"), 1), as_int(status.get("replicas")),
        as_int(status.get("readyReplicas")), age(rc, now), names, images, format_labels(spec.get("selector")),
    ]


POD_TEMPLATE_COLUMNS = [
    NAME,
    Column("Containers", doc="Names of each container in the template."),
    Column("Images", doc="Images referenced by each container in the template."),
    Column("Pod Labels", doc="The labels for the pod template."),
]


@register("", "podtemplates", POD_TEMPLATE_COLUMNS)
def pod_template_row(tpl: Obj, now: datetime) -> list[Any]:
    names, images = container_cells(dig(tpl, "template", "spec", "containers"))
    return [name(tpl), names, images, format_labels(dig(tpl, "template", "metadata", "labels"))]


COMPONENT_COLUMNS = [
    NAME,
    Column("Status", doc="Status of the component conditions"),
    Column("Message", doc="Message of the component conditions"),
    Column("Error", doc="Error of the component conditions"),
]


@register("", "componentstatuses", COMPONENT_COLUMNS)
def component_row(cs: Obj, now: datetime) -> list[Any]:
    for cond in cs.get("conditions") or []:
        if cond.get("type") == "Healthy":
            healthy = "Healthy" if cond.get("status") == "True" else "Unhealthy"
            return [name(cs), healthy, cond.get("message", ""), cond.get("error", "")]
    return [name(cs), "Unknown", "", ""]

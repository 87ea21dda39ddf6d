"""apps/v1: deployments, replica sets, stateful sets, daemon sets, controller revisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .common import (AGE, CONTAINERS_WIDE, IMAGES_WIDE, NAME, Column, Obj, age, as_int, container_cells, dig,
                     format_label_selector, format_labels, meta, name, register, selector_string)

DEPLOY_COLUMNS = [
    NAME,
    Column("Ready", doc="Number of the pod with ready state"),
    Column("Up-to-date", doc=("apps.v1.DeploymentStatus", "updatedReplicas")),
    Column("Available", doc=("apps.v1.DeploymentStatus", "availableReplicas")),
    AGE, CONTAINERS_WIDE, IMAGES_WIDE,
    Column("Selector", doc=("apps.v1.DeploymentSpec", "selector"), priority=1),
]


def _template_containers(obj: Obj) -> tuple[str, str]:
    return container_cells(dig(obj, "spec", "template", "spec", "containers"))


@register("apps", "deployments", DEPLOY_COLUMNS)
def deployment_row(d: Obj, now: datetime) -> list[Any]:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    names, images = _template_containers(d)
    selector = selector_string(spec.get("selector"))
    return [
        name(d), f"{as_int(status.get('readyReplicas'))}/{as_int(spec.get('replicas'), 1)}",
        as_int(status.get("updatedReplicas")), as_int(status.get("availableReplicas")), age(d, now),
        names, images, "<invalid>" if selector is None else selector,
    ]


RS_COLUMNS = [
    NAME,
    Column("Desired", "integer", doc=("apps.v1.ReplicaSetSpec", "replicas")),
    Column("Current", "integer", doc=("apps.v1.ReplicaSetStatus", "replicas")),
    Column("Ready", "integer", doc=("apps.v1.ReplicaSetStatus", "readyReplicas")),
    AGE, CONTAINERS_WIDE, IMAGES_WIDE,
    Column("Selector", doc=("apps.v1.ReplicaSetSpec", "selector"), priority=1),
]


@register("apps", "replicasets", RS_COLUMNS)
def replicaset_row(rs: Obj, now: datetime) -> list[Any]:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    names, images = _template_containers(rs)
    return [
        name(rs), as_int(spec.get("replicas"), 1), as_int(status.get("replicas")),
        as_int(status.get("readyReplicas")), age(rs, now), names, images,
        format_label_selector(spec.get("selector")),
    ]


STS_COLUMNS = [NAME, Column("Ready", doc="Number of the pod with ready state"), AGE, CONTAINERS_WIDE, IMAGES_WIDE]


@register("apps", "statefulsets", STS_COLUMNS)
def statefulset_row(sts: Obj, now: datetime) -> list[Any]:
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    names, images = _template_containers(sts)
    ready = f"{as_int(status.get('readyReplicas'))}/{as_int(spec.get('replicas'), 1)}"
    return [name(sts), ready, age(sts, now), names, images]


DS_STATUS = "apps.v1.DaemonSetStatus"
DS_COLUMNS = [
    NAME,
    Column("Desired", "integer", doc=(DS_STATUS, "desiredNumberScheduled")),
    Column("Current", "integer", doc=(DS_STATUS, "currentNumberScheduled")),
    Column("Ready", "integer", doc=(DS_STATUS, "numberReady")),
    Column("Up-to-date", "integer", doc=(DS_STATUS, "updatedNumberScheduled")),
    Column("Available", "integer", doc=(DS_STATUS, "numberAvailable")),
    Column("Node Selector", doc=("core.v1.PodSpec", "nodeSelector")),
    AGE, CONTAINERS_WIDE, IMAGES_WIDE,
    Column("Selector", doc=("apps.v1.DaemonSetSpec", "selector"), priority=1),
]


@register("apps", "daemonsets", DS_COLUMNS)
def daemonset_row(ds: Obj, now: datetime) -> list[Any]:
    status = ds.get("status") or {}
    names, images = _template_containers(ds)
    counts = [as_int(status.get(k)) for k in ("desiredNumberScheduled", "currentNumberScheduled", "numberReady",
                                               "updatedNumberScheduled", "numberAvailable")]
    return [
        name(ds), *counts, format_labels(dig(ds, "spec", "template", "spec", "nodeSelector")), age(ds, now),
        names, images, format_label_selector(dig(ds, "spec", "selector")),
    ]


REVISION_COLUMNS = [
    NAME,
    Column("Controller", doc="Controller of the object"),
    Column("Revision", doc=("apps.v1.ControllerRevision", "revision")),
    AGE,
]


def controller_name(obj: Obj) -> str:
    """``kind.group/name`` of the controlling owner, lower-cased, or ``<none>``."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            api_version = ref.get("apiVersion", "")
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            kind = ref.get("kind", "")
            qualified = f"{kind}.{group}" if group else kind
            return f"{qualified.lower()}/{ref.get('name', '')}" if qualified else ref.get("name", "")
    return "<none>"


@register("apps", "controllerrevisions", REVISION_COLUMNS)
def revision_row(rev: Obj, now: datetime) -> list[Any]:
    return [name(rev), controller_name(rev), as_int(rev.get("revision")), age(rev, now)]

"""The resource table: every served resource, its names, verbs, subresources, schema
and storage prefix. Routes, discovery, OpenAPI and the registry all read it; custom
resource definitions add and remove entries at runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from sampan.api.schemas import schema_for

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION_DELETE = ("create", "delete", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)


@dataclass(frozen=True)
class SubresourceInfo:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str | None = None  # set when the subresource speaks another group's type
    version: str | None = None


@dataclass
class ResourceInfo:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = STANDARD_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: dict[str, SubresourceInfo] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    storage_group: str | None = None  # shared storage (several versions of one CRD)
    custom: bool = False  # served from a CustomResourceDefinition
    printer_columns: list[dict[str, Any]] | None = None  # a CRD version's additionalPrinterColumns
    selectable_fields: tuple[str, ...] = ()  # a CRD version's selectableFields (paths without the dot)
    # A CRD's scale subresource: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    scale_paths: tuple[str, str, str] | None = None
    virtual: bool = False  # create-only reviews, nothing stored
    custom_list_kind: str = ""  # a CRD's names.listKind
    terminating: bool = False  # a CRD being deleted: no new custom resources

    @property
    def list_kind(self) -> str:
        return self.custom_list_kind or self.kind + "List"

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_prefix(self) -> str:
        return f"/registry/{self.storage_group or self.group or 'core'}/{self.plural}/"

    def key(self, namespace: str, name: str) -> str:
        return self.storage_prefix + (f"{namespace}/{name}" if self.namespaced else name)

    def collection_prefix(self, namespace: str) -> str:
        return self.storage_prefix + (f"{namespace}/" if self.namespaced and namespace else "")

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _sub(
    name: str, kind: str, verbs: Iterable[str], group: str | None = None, version: str | None = None
) -> SubresourceInfo:
    return SubresourceInfo(name, kind, tuple(verbs), group, version)


_RW = ("get", "patch", "update")


def status(kind: str) -> SubresourceInfo:
    return _sub("status", kind, _RW)


SCALE = _sub("scale", "Scale", _RW, "autoscaling", "v1")


def _builtin(
    gv: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subs: tuple[SubresourceInfo, ...] = (),
    verbs: tuple[str, ...] = STANDARD_VERBS,
    virtual: bool = False,
    storage_group: str | None = None,
) -> ResourceInfo:
    group, _, version = gv.rpartition("/")
    return ResourceInfo(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        verbs=verbs,
        short_names=short,
        categories=categories,
        subresources={s.name: s for s in subs},
        virtual=virtual,
        storage_group=storage_group,
    )


def builtin_resources() -> list[ResourceInfo]:
    pod_subs = (
        status("Pod"),
        _sub("binding", "Binding", CREATE_ONLY),
        _sub("eviction", "Eviction", CREATE_ONLY, "policy", "v1"),
        _sub("log", "Pod", ("get",)),
        _sub("exec", "PodExecOptions", ("create", "get")),
        _sub("attach", "PodAttachOptions", ("create", "get")),
        _sub("portforward", "PodPortForwardOptions", ("create", "get")),
        _sub("ephemeralcontainers", "Pod", _RW),
    )
    res = [
        _builtin(
            "v1",
            "namespaces",
            "Namespace",
            False,
            ("ns",),
            (),
            (status("Namespace"), _sub("finalize", "Namespace", ("update",))),
            NO_COLLECTION_DELETE,
        ),
        _builtin("v1", "pods", "Pod", True, ("po",), ("all",), pod_subs),
        _builtin("v1", "nodes", "Node", False, ("no",), (), (status("Node"),)),
        _builtin("v1", "services", "Service", True, ("svc",), ("all",), (status("Service"),)),
        _builtin("v1", "endpoints", "Endpoints", True, ("ep",)),
        _builtin("v1", "configmaps", "ConfigMap", True, ("cm",)),
        _builtin("v1", "secrets", "Secret"),
        _builtin(
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            True,
            ("sa",),
            (),
            (_sub("token", "TokenRequest", CREATE_ONLY, "authentication.k8s.io", "v1"),),
        ),
        _builtin("v1", "events", "Event", True, ("ev",)),
        _builtin("v1", "persistentvolumes", "PersistentVolume", False, ("pv",), (), (status("PersistentVolume"),)),
        _builtin(
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            True,
            ("pvc",),
            (),
            (status("PersistentVolumeClaim"),),
        ),
        _builtin("v1", "resourcequotas", "ResourceQuota", True, ("quota",), (), (status("ResourceQuota"),)),
        _builtin("v1", "limitranges", "LimitRange", True, ("limits",)),
        _builtin("apps/v1", "deployments", "Deployment", True, ("deploy",), ("all",), (status("Deployment"), SCALE)),
        _builtin("apps/v1", "replicasets", "ReplicaSet", True, ("rs",), ("all",), (status("ReplicaSet"), SCALE)),
        _builtin("apps/v1", "statefulsets", "StatefulSet", True, ("sts",), ("all",), (status("StatefulSet"), SCALE)),
        _builtin("apps/v1", "daemonsets", "DaemonSet", True, ("ds",), ("all",), (status("DaemonSet"),)),
        _builtin("apps/v1", "controllerrevisions", "ControllerRevision"),
        _builtin("batch/v1", "jobs", "Job", True, (), ("all",), (status("Job"),)),
        _builtin("batch/v1", "cronjobs", "CronJob", True, ("cj",), ("all",), (status("CronJob"),)),
        _builtin(
            "autoscaling/v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            True,
            ("hpa",),
            ("all",),
            (status("HorizontalPodAutoscaler"),),
        ),
        # Same storage as v2 (converted; sampan/api/conversion/autoscaling.py).
        _builtin(
            "autoscaling/v1",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            True,
            ("hpa",),
            ("all",),
            (status("HorizontalPodAutoscaler"),),
        ),
        _builtin("networking.k8s.io/v1", "ingresses", "Ingress", True, ("ing",), (), (status("Ingress"),)),
        _builtin("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
        _builtin("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
        _builtin("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
        _builtin("coordination.k8s.io/v1", "leases", "Lease"),
        # Stored with core/v1 events (converted; sampan/api/conversion/events.py).
        _builtin("events.k8s.io/v1", "events", "Event", True, ("ev",), storage_group="core"),
        _builtin("rbac.authorization.k8s.io/v1", "roles", "Role"),
        _builtin("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
        _builtin("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
        _builtin("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _builtin(
            "policy/v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            ("pdb",),
            (),
            (status("PodDisruptionBudget"),),
        ),
        _builtin("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", False, ("pc",)),
        _builtin("storage.k8s.io/v1", "storageclasses", "StorageClass", False, ("sc",)),
        _builtin(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            ("crd", "crds"),
            ("api-extensions",),
            (status("CustomResourceDefinition"),),
        ),
        _builtin(
            "authorization.k8s.io/v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            verbs=CREATE_ONLY,
            virtual=True,
        ),
        _builtin(
            "authorization.k8s.io/v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            False,
            verbs=CREATE_ONLY,
            virtual=True,
        ),
        _builtin(
            "authentication.k8s.io/v1",
            "selfsubjectreviews",
            "SelfSubjectReview",
            False,
            verbs=CREATE_ONLY,
            virtual=True,
        ),
        _builtin("authentication.k8s.io/v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY, virtual=True),
        # Usage read from the node agents (sampan/apiserver/metrics_api.py), as metrics-server serves it.
        _builtin("metrics.k8s.io/v1beta1", "nodes", "NodeMetrics", False, verbs=("get", "list"), virtual=True),
        _builtin("metrics.k8s.io/v1beta1", "pods", "PodMetrics", verbs=("get", "list"), virtual=True),
    ]
    for info in res:
        info.schema = schema_for(info.group, info.version, info.kind)
    return res


# Upstream lists groups in this order in /apis; new groups (CRDs) go after, by name.
_GROUP_ORDER = [
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
]


class ResourceTable:
    """Resources by (group, version, plural). Mutable: CRDs come and go at runtime;
    ``generation`` changes on every change so caches (OpenAPI hashes) can follow."""

    def __init__(self, resources: Iterable[ResourceInfo] = ()) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        self.generation = 0
        # groups() is asked on every request to a group's API: remember it per generation.
        self._groups: tuple[int, list[tuple[str, list[str]]]] | None = None
        for info in resources:
            self.add(info)

    def add(self, info: ResourceInfo) -> None:
        self._by_gvr[(info.group, info.version, info.plural)] = info
        self.generation += 1

    def remove(self, group: str, version: str, plural: str) -> None:
        if self._by_gvr.pop((group, version, plural), None) is not None:
            self.generation += 1

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, plural))

    def __iter__(self) -> Iterator[ResourceInfo]:
        return iter(list(self._by_gvr.values()))

    def for_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [r for r in self if r.group == group and r.version == version]

    def groups(self) -> list[tuple[str, list[str]]]:
        """Non-core groups with their versions, preferred version first."""
        if self._groups is not None and self._groups[0] == self.generation:
            return self._groups[1]
        versions: dict[str, list[str]] = {}
        for r in self:
            if r.group:
                vs = versions.setdefault(r.group, [])
                if r.version not in vs:
                    vs.append(r.version)
        order = {g: i for i, g in enumerate(_GROUP_ORDER)}
        names = sorted(versions, key=lambda g: (order.get(g, len(order)), g))
        result = [(g, sorted(versions[g], key=version_priority)) for g in names]
        self._groups = (self.generation, result)
        return result

    def versions_of(self, group: str) -> list[str]:
        return next((vs for g, vs in self.groups() if g == group), [])

def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first, then others."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {"None": 0, "beta": 1, "alpha": 2}[str(m.group(2))]
    return (stage, -major, -int(m.group(3) or 0), version)


def default_table() -> ResourceTable:
    return ResourceTable(builtin_resources())

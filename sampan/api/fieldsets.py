"""Which fields a built-in resource can be selected by, and their values.

Mirrors the API server: a kind either has its own list of selectable field
labels (with its own error text), or it gets the default list
``metadata.name`` / ``metadata.namespace``.  Fields an object lacks read as "".
"""

from __future__ import annotations

from typing import Any, Callable

from sampan.api.selectors import FieldSelector, SelectorError

Obj = dict[str, Any]
FieldFn = Callable[[Obj], dict[str, str]]

_META = frozenset({"metadata.name", "metadata.namespace"})


def _get(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _meta_fields(obj: Obj, namespaced: bool) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {
        "metadata.name": _text(meta.get("name")),
        "metadata.namespace": _text(meta.get("namespace")) if namespaced else "",
    }


def _paths(*paths: str) -> FieldFn:
    """Fields read straight from the JSON path of the same name."""
    return lambda obj: {p: _text(_get(obj, p)) for p in paths}


def _pod(obj: Obj) -> dict[str, str]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    pod_ips = status.get("podIPs") or []
    first_ip = pod_ips[0].get("ip", "") if pod_ips else status.get("podIP", "")
    return {
        "spec.nodeName": _text(spec.get("nodeName")),
        "spec.restartPolicy": _text(spec.get("restartPolicy")),
        "spec.schedulerName": _text(spec.get("schedulerName")),
        "spec.serviceAccountName": _text(spec.get("serviceAccountName")),
        "spec.hostNetwork": _text(bool(spec.get("hostNetwork"))),
        "status.phase": _text(status.get("phase")),
        "status.podIP": _text(first_ip),
        "status.nominatedNodeName": _text(status.get("nominatedNodeName")),
    }


def _core_event(obj: Obj) -> dict[str, str]:
    ref = obj.get("involvedObject") or {}
    fields = {f"involvedObject.{k}": _text(ref.get(k)) for k in _REF_KEYS}
    reporting = _text(obj.get("reportingComponent"))
    fields.update(
        reason=_text(obj.get("reason")),
        reportingComponent=reporting,
        source=_text(_get(obj, "source.component")) or reporting,
        type=_text(obj.get("type")),
    )
    return fields


def _events_v1_event(obj: Obj) -> dict[str, str]:
    ref = obj.get("regarding") or {}
    fields = {f"regarding.{k}": _text(ref.get(k)) for k in _REF_KEYS}
    controller = _text(obj.get("reportingController"))
    fields.update(
        reason=_text(obj.get("reason")),
        reportingController=controller,
        # The old "source" is the deprecated source component, else the controller.
        source=_text(_get(obj, "deprecatedSource.component")) or controller,
        type=_text(obj.get("type")),
    )
    return fields


def _node(obj: Obj) -> dict[str, str]:
    return {"spec.unschedulable": _text(bool(_get(obj, "spec.unschedulable")))}


def _job(obj: Obj) -> dict[str, str]:
    return {"status.successful": _text(_get(obj, "status.succeeded") or 0)}


def _int_field(path: str) -> FieldFn:
    return lambda obj: {path: _text(_get(obj, path) or 0)}


_REF_KEYS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def _not_supported(label: str, kind: str) -> str:
    return f"field label not supported: {label}"


def _default_error(label: str, kind: str) -> str:
    return f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"'


def _batch_error(label: str, kind: str) -> str:
    return f'field label "{label}" not supported for batchv1.{kind}'


class _Kind:
    def __init__(
        self,
        kind: str,
        labels: frozenset[str],
        fields: FieldFn | None = None,
        error: Callable[[str, str], str] = _not_supported,
        namespaced: bool = True,
        renames: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.labels = labels
        self.fields = fields
        self.error = error
        self.namespaced = namespaced
        self.renames = renames or {}


def _labels(*names: str, meta: frozenset[str] = _META) -> frozenset[str]:
    return meta | frozenset(names)


_NAME_ONLY = frozenset({"metadata.name"})

_KINDS: dict[tuple[str, str], _Kind] = {
    ("", "pods"): _Kind(
        "Pod",
        _labels("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
                "status.nominatedNodeName"),
        _pod,
        renames={"spec.host": "spec.nodeName"},  # old v1 clients
    ),
    ("", "nodes"): _Kind("Node", _labels("spec.unschedulable", meta=_NAME_ONLY), _node, namespaced=False),
    ("", "replicationcontrollers"): _Kind(
        "ReplicationController", _labels("status.replicas"), _int_field("status.replicas")
    ),
    ("", "events"): _Kind(
        "Event",
        _labels(*(f"involvedObject.{k}" for k in _REF_KEYS), "reason", "reportingComponent", "source", "type"),
        _core_event,
    ),
    ("events.k8s.io", "events"): _Kind(
        "Event",
        _labels(*(f"regarding.{k}" for k in _REF_KEYS), "reason", "reportingController", "source", "type"),
        _events_v1_event,
    ),
    ("", "namespaces"): _Kind(
        "Namespace", _labels("status.phase", meta=_NAME_ONLY), _paths("status.phase"), namespaced=False
    ),
    ("", "secrets"): _Kind("Secret", _labels("type"), _paths("type")),
    ("", "services"): _Kind("Service", _labels("spec.clusterIP", "spec.type"), _paths("spec.clusterIP", "spec.type")),
    ("batch", "jobs"): _Kind("Job", _labels("status.successful"), _job, error=_batch_error),
    ("certificates.k8s.io", "certificatesigningrequests"): _Kind(
        "CertificateSigningRequest", _labels("spec.signerName", meta=_NAME_ONLY), _paths("spec.signerName"),
        namespaced=False,
    ),
}

# Values computed for objects although the API rejects the label in selectors
# (upstream stores them for internal matching only).
_EXTRA_FIELDS: dict[tuple[str, str], FieldFn] = {
    ("apps", "replicasets"): _int_field("status.replicas"),
}

# Built-in cluster-scoped resources without their own field labels.
CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset({
    ("", "nodes"), ("", "namespaces"), ("", "persistentvolumes"), ("", "componentstatuses"),
    ("rbac.authorization.k8s.io", "clusterroles"), ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("storage.k8s.io", "storageclasses"), ("storage.k8s.io", "csidrivers"), ("storage.k8s.io", "csinodes"),
    ("storage.k8s.io", "volumeattachments"), ("scheduling.k8s.io", "priorityclasses"),
    ("apiextensions.k8s.io", "customresourcedefinitions"), ("apiregistration.k8s.io", "apiservices"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    ("networking.k8s.io", "ingressclasses"), ("node.k8s.io", "runtimeclasses"),
    ("certificates.k8s.io", "certificatesigningrequests"), ("flowcontrol.apiserver.k8s.io", "flowschemas"),
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
})

_DEFAULT = _Kind("", _META, error=_default_error)


def _kind(group: str, resource: str) -> _Kind:
    return _KINDS.get((group, resource), _DEFAULT)


def supported_fields(group: str, resource: str) -> frozenset[str]:
    """Field labels the API accepts in a fieldSelector for this resource."""
    return _kind(group, resource).labels


def field_set(group: str, resource: str, obj: Obj) -> dict[str, str]:
    """The selectable fields of ``obj`` and their string values."""
    kind = _kind(group, resource)
    namespaced = kind.namespaced and (group, resource) not in CLUSTER_SCOPED
    fields = _meta_fields(obj, namespaced)
    extra = kind.fields or _EXTRA_FIELDS.get((group, resource))
    if extra is not None:
        fields.update(extra(obj))
    return fields


def validate_field_selector(group: str, resource: str, selector: FieldSelector) -> None:
    """Raise SelectorError, worded like the API server, for an unsupported label."""
    kind = _kind(group, resource)
    for field, _op, _value in selector.requirements:
        if field not in kind.labels and field not in kind.renames:
            raise SelectorError(kind.error(field, kind.kind))


def convert_field_selector(group: str, resource: str, selector: FieldSelector) -> FieldSelector:
    """Validate, then rename legacy labels (pods' ``spec.host``) to current ones."""
    validate_field_selector(group, resource, selector)
    renames = _kind(group, resource).renames
    if not renames:
        return selector
    return selector.transform(lambda f, v: (renames.get(f, f), v))


def validate_custom_field_selector(
    selector: FieldSelector, cluster_scoped: bool, selectable_fields: frozenset[str] = frozenset()
) -> None:
    """Custom resources: metadata.name, metadata.namespace (namespaced only), and
    the CRD's ``selectableFields`` (given as paths without the leading dot)."""
    for field, _op, _value in selector.requirements:
        ok = field == "metadata.name" or (field == "metadata.namespace" and not cluster_scoped)
        if not ok and field not in selectable_fields:
            raise SelectorError(f"field label not supported: {field}")


def custom_field_set(obj: Obj, cluster_scoped: bool, selectable_fields: frozenset[str] = frozenset()) -> dict[str, str]:
    fields = _meta_fields(obj, not cluster_scoped)
    for path in selectable_fields:
        fields[path] = _text(_get(obj, path))
    return fields

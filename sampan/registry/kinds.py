"""Strategies of the built-in kinds that differ from the default."""

from __future__ import annotations

from typing import Any

from sampan.api import crdschema, fieldsets
from sampan.api.qos import pod_qos_class
from sampan.api.selectors import FieldSelector
from sampan.api.validation import field
from sampan.apiserver.resources import ResourceInfo
from sampan.registry.default_tolerations import DEFAULT_SECONDS as DEFAULT_TOLERATION_SECONDS
from sampan.registry.default_tolerations import add_default_tolerations
from sampan.registry.event_strategy import EventStrategy
from sampan.registry.meta import Obj, timestamp
from sampan.registry.strategy import Strategy

DEFAULT_POD_GRACE = 30


class PodStrategy(Strategy):
    # DefaultTolerationSeconds: (not-ready, unreachable); the server may change them.
    toleration_seconds: tuple[int, int] = (DEFAULT_TOLERATION_SECONDS, DEFAULT_TOLERATION_SECONDS)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(obj.get("spec") or {})}
        add_default_tolerations(obj, *self.toleration_seconds)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        # Ephemeral containers are added through their subresource only.
        spec, old_ephemeral = new.get("spec"), (old.get("spec") or {}).get("ephemeralContainers")
        if isinstance(spec, dict):
            if old_ephemeral is None:
                spec.pop("ephemeralContainers", None)
            else:
                spec["ephemeralContainers"] = old_ephemeral

    def validate(self, obj: Obj, old: Obj | None) -> list[dict[str, Any]]:
        if old is None and (obj.get("spec") or {}).get("ephemeralContainers"):
            return [field.forbidden("spec.ephemeralContainers", "cannot be set on create")]
        return []

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # Nothing runs an unscheduled or finished pod, so there is nothing to wait for.
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, requested)
        grace = spec.get("terminationGracePeriodSeconds")
        return DEFAULT_POD_GRACE if grace is None else max(0, int(grace))


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if "kubernetes" not in (spec.get("finalizers") or []):
            spec["finalizers"] = list(spec.get("finalizers") or []) + ["kubernetes"]
        obj["status"] = {"phase": "Active"}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        # spec.finalizers change only through the finalize subresource.
        new["spec"] = {**(new.get("spec") or {}), "finalizers": (old.get("spec") or {}).get("finalizers", [])}

    def before_delete(self, obj: Obj) -> bool:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("deletionTimestamp", timestamp())
        meta.setdefault("deletionGracePeriodSeconds", 0)
        obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}
        return bool((obj.get("spec") or {}).get("finalizers"))


class JobStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.setdefault("spec", {})
        if spec.get("manualSelector") is True:
            return
        # Like upstream: the job's pods are selected by its uid, so they can't match another job's.
        meta = obj.get("metadata") or {}
        uid, name = meta.get("uid", ""), meta.get("name", "")
        selector = spec.get("selector") if isinstance(spec.get("selector"), dict) else {}
        match = selector.get("matchLabels") if isinstance(selector.get("matchLabels"), dict) else {}
        match.setdefault("batch.kubernetes.io/controller-uid", uid)
        spec["selector"] = {**selector, "matchLabels": match}
        template = spec.get("template")
        if isinstance(template, dict):
            tmeta = template.setdefault("metadata", {})
            labels = tmeta.get("labels") if isinstance(tmeta.get("labels"), dict) else {}
            for key, value in (
                ("batch.kubernetes.io/controller-uid", uid),
                ("batch.kubernetes.io/job-name", name),
                ("controller-uid", uid),
                ("job-name", name),
            ):
                labels.setdefault(key, value)
            tmeta["labels"] = labels


class NodeStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        pass  # agents register nodes with their status filled in


class CustomResourceStrategy(Strategy):
    """Custom resources: validated against their CRD schema, selected by metadata
    fields and the CRD's selectableFields."""

    def __init__(self, info: ResourceInfo) -> None:
        super().__init__(info.group, info.plural, info.has_status, custom=True)
        self.info = info

    def validate(self, obj: Obj, old: Obj | None) -> list[dict[str, Any]]:
        return crdschema.validate_cr(obj, self.info.schema) if self.info.schema else []

    def fields(self, obj: Obj) -> dict[str, str]:
        selectable = frozenset(self.info.selectable_fields)
        return fieldsets.custom_field_set(obj, not self.info.namespaced, selectable)

    def convert_field_selector(self, selector: FieldSelector) -> FieldSelector:
        selectable = frozenset(self.info.selectable_fields)
        fieldsets.validate_custom_field_selector(selector, not self.info.namespaced, selectable)
        return selector


def builtin_strategy(group: str, plural: str, has_status: bool, custom: bool = False) -> Strategy:
    cls = {
        ("", "pods"): PodStrategy,
        ("", "namespaces"): NamespaceStrategy,
        ("", "nodes"): NodeStrategy,
        ("batch", "jobs"): JobStrategy,
        ("", "events"): EventStrategy,
        ("events.k8s.io", "events"): EventStrategy,
    }.get((group, plural), Strategy)
    return cls(group, plural, has_status, custom)

"""Rules that only apply to updates: immutable fields per kind."""

from __future__ import annotations

import copy
from typing import Any

from sampan.api.validation import crd, field
from sampan.api.validation.field import Cause

POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)
STATEFULSET_UPDATE_MESSAGE = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _spec(obj: dict) -> dict:
    return _dict(obj.get("spec"))


def _immutable(new: dict, old: dict, key: str, path: str) -> list[Cause]:
    if key in old and new.get(key) != old.get(key):
        return [field.immutable(path, new.get(key))]
    return []


def pod_update(new: dict, old: dict) -> list[Cause]:
    errs: list[Cause] = []
    nspec, ospec = _spec(new), _spec(old)
    ads, old_ads = nspec.get("activeDeadlineSeconds"), ospec.get("activeDeadlineSeconds")
    if old_ads is not None and (ads is None or ads > old_ads):
        errs.append(field.invalid("spec.activeDeadlineSeconds", ads,
                                  "must be less than or equal to previous value"))
    old_tols = [t for t in ospec.get("tolerations") or []]
    new_tols = nspec.get("tolerations") or []
    if any(t not in new_tols for t in old_tols):
        errs.append(field.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"))
    # Compare the spec with the mutable parts taken from the new object.
    mutable = copy.deepcopy(ospec)
    for group in ("containers", "initContainers"):
        olds, news = mutable.get(group) or [], nspec.get(group) or []
        if len(olds) == len(news):
            for o, n in zip(olds, news):
                if isinstance(o, dict) and isinstance(n, dict) and "image" in n:
                    o["image"] = n["image"]
    # Ephemeral containers change only through their subresource (only additions, below).
    ignored = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates",
               "ephemeralContainers")
    for key in ignored:
        mutable.pop(key, None)
    compared = {k: v for k, v in nspec.items() if k not in ignored}
    if not ospec.get("nodeName"):
        # the scheduler's binding sets nodeName on a pending pod
        mutable.pop("nodeName", None)
        compared.pop("nodeName", None)
    if compared != mutable:
        errs.append(field.forbidden("spec", POD_UPDATE_MESSAGE))
    return errs + _ephemeral_update(nspec, ospec)


def _ephemeral_update(nspec: dict, ospec: dict) -> list[Cause]:
    """Ephemeral containers can be added, never changed or removed."""
    news = {c.get("name"): (i, c) for i, c in enumerate(nspec.get("ephemeralContainers") or [])
            if isinstance(c, dict)}
    errs: list[Cause] = []
    for old in ospec.get("ephemeralContainers") or []:
        name = old.get("name")
        if name not in news:
            errs.append(field.forbidden("spec.ephemeralContainers",
                                        f'existing ephemeral containers "{name}" may not be removed'))
        elif news[name][1] != old:
            errs.append(field.forbidden(f"spec.ephemeralContainers[{news[name][0]}]",
                                        f'existing ephemeral containers "{name}" may not be changed'))
    return errs


def service_update(new: dict, old: dict) -> list[Cause]:
    nspec, ospec = _spec(new), _spec(old)
    if nspec.get("type") == "ExternalName" or ospec.get("type") == "ExternalName":
        return []
    old_ip, new_ip = ospec.get("clusterIP"), nspec.get("clusterIP")
    if old_ip and new_ip and new_ip != old_ip:
        return [field.invalid("spec.clusterIPs[0]", nspec.get("clusterIPs") or [new_ip], "may not change once set")]
    return []


def _data_update(new: dict, old: dict, keys: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    errs: list[Cause] = []
    if new.get("immutable") is not True:
        errs.append(field.forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if (new.get(key) or {}) != (old.get(key) or {}):
            errs.append(field.forbidden(key, "field is immutable when `immutable` is set"))
    return errs


def config_map_update(new: dict, old: dict) -> list[Cause]:
    return _data_update(new, old, ("data", "binaryData"))


def secret_update(new: dict, old: dict) -> list[Cause]:
    errs = _immutable(new, old, "type", "type")
    return errs + _data_update(new, old, ("data",))


def selector_update(new: dict, old: dict) -> list[Cause]:
    return _immutable(_spec(new), _spec(old), "selector", "spec.selector")


def stateful_set_update(new: dict, old: dict) -> list[Cause]:
    allowed = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
               "minReadySeconds")
    rest_new = {k: v for k, v in _spec(new).items() if k not in allowed}
    rest_old = {k: v for k, v in _spec(old).items() if k not in allowed}
    return [field.forbidden("spec", STATEFULSET_UPDATE_MESSAGE)] if rest_new != rest_old else []


def job_update(new: dict, old: dict) -> list[Cause]:
    nspec, ospec = _spec(new), _spec(old)
    errs = _immutable(nspec, ospec, "selector", "spec.selector")
    errs += _immutable(nspec, ospec, "completionMode", "spec.completionMode")
    if nspec.get("completionMode") != "Indexed":
        errs += _immutable(nspec, ospec, "completions", "spec.completions")
    if nspec.get("template") != ospec.get("template"):
        errs.append(field.immutable("spec.template", nspec.get("template")))
    return errs


def pvc_update(new: dict, old: dict) -> list[Cause]:
    nspec, ospec = copy.deepcopy(_spec(new)), copy.deepcopy(_spec(old))
    for spec in (nspec, ospec):
        spec.pop("resources", None)  # size may grow (expansion)
        spec.pop("volumeAttributesClassName", None)
    if not ospec.get("volumeName"):
        nspec.pop("volumeName", None)
    if ospec.get("storageClassName") is None:
        nspec.pop("storageClassName", None)  # a class may be set once on a claim without one (1.28+)
    if nspec != ospec:
        return [field.forbidden("spec", "spec is immutable after creation except resources.requests and "
                                        "volumeAttributesClassName for bound claims")]
    return []


def node_update(new: dict, old: dict) -> list[Cause]:
    ospec, nspec = _spec(old), _spec(new)
    if ospec.get("podCIDR") and nspec.get("podCIDR") != ospec.get("podCIDR"):
        return [field.forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid")]
    return []


UPDATE_RULES = {
    ("", "Pod"): pod_update,
    ("", "Service"): service_update,
    ("", "ConfigMap"): config_map_update,
    ("", "Secret"): secret_update,
    ("", "PersistentVolumeClaim"): pvc_update,
    ("", "Node"): node_update,
    ("apps", "Deployment"): selector_update,
    ("apps", "ReplicaSet"): selector_update,
    ("apps", "DaemonSet"): selector_update,
    ("apps", "StatefulSet"): stateful_set_update,
    ("batch", "Job"): job_update,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd.validate_crd_update,
}

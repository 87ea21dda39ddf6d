"""The LimitRanger admission plugin: a namespace's LimitRanges fill in default container
requests and limits (mutating) and refuse pods and claims outside min/max/ratio (validating)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sampan.api import quota as q
from sampan.api.quantity import Quantity
from sampan.registry.admission import CREATE, AdmissionPlugin, Attributes
from sampan.registry.meta import Obj
from sampan.registry.options import ListOptions

if TYPE_CHECKING:
    from sampan.registry.registry import Registry

ANNOTATION = "kubernetes.io/limit-ranger"


class LimitRanger(AdmissionPlugin):
    name = "LimitRanger"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def handles(self, attrs: Attributes) -> bool:
        if attrs.subresource:
            return False
        # Pod containers cannot change after create, so only claims are checked on update.
        return (attrs.resource == ("", "pods") and attrs.operation == CREATE) or attrs.resource == (
            "",
            "persistentvolumeclaims",
        )

    async def _items(self, namespace: str) -> list[Obj]:
        rs = self.registry.must("", "v1", "limitranges")
        listed = await rs.list(namespace, ListOptions())
        return [
            item
            for lr in listed.get("items") or []
            for item in (lr.get("spec") or {}).get("limits") or []
            if isinstance(item, dict)
        ]

    async def admit(self, attrs: Attributes) -> None:
        if attrs.resource != ("", "pods"):
            return
        items = [i for i in await self._items(attrs.namespace) if i.get("type") == "Container"]
        if not items:
            return
        defaults: dict[str, Any] = {}
        requests: dict[str, Any] = {}
        for item in items:
            defaults.update(item.get("default") or {})
            requests.update(item.get("defaultRequest") or {})
        notes: list[str] = []
        spec = attrs.obj.get("spec") or {}
        for field, prefix in (("containers", "container"), ("initContainers", "init container")):
            for c in spec.get(field) or []:
                if isinstance(c, dict):
                    notes += _merge_defaults(c, prefix, defaults, requests)
        if notes:
            m = attrs.obj.setdefault("metadata", {})
            note = "LimitRanger plugin set: " + "; ".join(notes)
            m["annotations"] = {**(m.get("annotations") or {}), ANNOTATION: note}

    async def validate(self, attrs: Attributes) -> None:
        items = await self._items(attrs.namespace)
        problems: list[str] = []
        spec = attrs.obj.get("spec") or {}
        for item in items:
            kind = item.get("type")
            if attrs.resource == ("", "pods") and kind == "Container":
                for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                    res = (c or {}).get("resources") or {}
                    problems += _check(kind, item, q.parse(res.get("requests")), q.parse(res.get("limits")))
            elif attrs.resource == ("", "pods") and kind == "Pod":
                requests, limits = q.pod_requests_limits(attrs.obj)
                problems += _check(kind, item, requests, limits)
            elif attrs.resource == ("", "persistentvolumeclaims") and kind == "PersistentVolumeClaim":
                requests = q.parse((spec.get("resources") or {}).get("requests"))
                problems += _check(kind, item, requests, {}, claim=True)
        if problems:
            raise attrs.forbidden(problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]")


def _merge_defaults(c: Obj, prefix: str, defaults: dict[str, Any], requests: dict[str, Any]) -> list[str]:
    res = c.setdefault("resources", {})
    set_limits = [k for k in sorted(defaults) if k not in (res.get("limits") or {})]
    set_requests = [k for k in sorted(requests) if k not in (res.get("requests") or {})]
    if set_limits:
        res["limits"] = {**(res.get("limits") or {}), **{k: defaults[k] for k in set_limits}}
    if set_requests:
        res["requests"] = {**(res.get("requests") or {}), **{k: requests[k] for k in set_requests}}
    notes = []
    name = c.get("name", "")
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {prefix} {name}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {prefix} {name}")
    return notes


def _check(kind: str, item: Obj, requests: q.Usage, limits: q.Usage, claim: bool = False) -> list[str]:
    """Upstream's min, max and maxLimitRequestRatio constraints, in its wording."""
    out: list[str] = []
    for name, raw in sorted((item.get("min") or {}).items()):
        enforced = _qty(raw)
        req, lim = requests.get(name), limits.get(name)
        if req is None:
            out.append(f"minimum {name} usage per {kind} is {enforced}.  No request is specified")
        elif req < enforced:
            out.append(f"minimum {name} usage per {kind} is {enforced}, but request is {req}")
        elif lim is not None and lim < enforced:
            out.append(f"minimum {name} usage per {kind} is {enforced}, but limit is {lim}")
    for name, raw in sorted((item.get("max") or {}).items()):
        enforced = _qty(raw)
        req, lim = requests.get(name), limits.get(name)
        if claim:  # claims only state requests
            if req is None:
                out.append(f"maximum {name} usage per {kind} is {enforced}.  No request is specified")
            elif enforced < req:
                out.append(f"maximum {name} usage per {kind} is {enforced}, but request is {req}")
        elif lim is None:
            out.append(f"maximum {name} usage per {kind} is {enforced}.  No limit is specified")
        elif enforced < lim:
            out.append(f"maximum {name} usage per {kind} is {enforced}, but limit is {lim}")
        elif req is not None and enforced < req:
            out.append(f"maximum {name} usage per {kind} is {enforced}, but request is {req}")
    for name, raw in sorted((item.get("maxLimitRequestRatio") or {}).items()):
        enforced = _qty(raw)
        req, lim = requests.get(name), limits.get(name)
        head = f"{name} max limit to request ratio per {kind} is {enforced}"
        if req is None or req.is_zero():
            out.append(f"{head}, but no request is specified or request is 0")
        elif lim is None or lim.is_zero():
            out.append(f"{head}, but no limit is specified or limit is 0")
        else:
            ratio = lim.amount / req.amount
            if ratio > enforced.amount:
                out.append(f"{head}, but provided ratio is {float(ratio):f}")
    return out


def _qty(raw: Any) -> Quantity:
    try:
        return q.parse({"v": raw})["v"]
    except KeyError:
        return Quantity(0)

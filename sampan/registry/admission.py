"""Admission: plugins that mutate (``admit``) or check (``validate``) a write after
defaulting, with access to other objects through the registry. The chain runs every
plugin that ``handles`` the request, in order, as upstream's admission chain does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sampan.api import errors
from sampan.apiserver.resources import ResourceInfo
from sampan.registry.meta import Obj, meta
from sampan.registry.options import ListOptions

if TYPE_CHECKING:
    from sampan.registry.registry import Registry

CREATE, UPDATE, DELETE = "CREATE", "UPDATE", "DELETE"


@dataclass
class Attributes:
    operation: str
    info: ResourceInfo
    obj: Obj
    old: Obj | None = None
    subresource: str = ""
    dry_run: bool = False
    user: Any = None

    @property
    def resource(self) -> tuple[str, str]:
        return (self.info.group, self.info.plural)

    @property
    def namespace(self) -> str:
        return meta(self.obj).get("namespace") or ""

    @property
    def name(self) -> str:
        m = meta(self.obj)
        return m.get("name") or m.get("generateName") or ""

    def forbidden(self, why: str) -> errors.APIError:
        gr = errors.GroupResource(self.info.group, self.info.plural)
        return errors.forbidden(gr, self.name, why)


class AdmissionPlugin:
    name = ""

    def handles(self, attrs: Attributes) -> bool:
        return False

    async def admit(self, attrs: Attributes) -> None:
        pass

    async def validate(self, attrs: Attributes) -> None:
        pass


class AdmissionChain:
    def __init__(self, plugins: list[AdmissionPlugin]) -> None:
        self.plugins = plugins

    async def admit(self, attrs: Attributes) -> None:
        for plugin in self.plugins:
            if plugin.handles(attrs):
                await plugin.admit(attrs)

    async def validate(self, attrs: Attributes) -> None:
        for plugin in self.plugins:
            if plugin.handles(attrs):
                await plugin.validate(attrs)


# -- Priority ------------------------------------------------------------------------------
PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
# Served even when nobody created them, as upstream's apiserver bootstraps them.
SYSTEM_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


class Priority(AdmissionPlugin):
    """A new pod's spec.priority and spec.preemptionPolicy come from its PriorityClass, or
    the global default class, or are 0 and PreemptLowerPriority when there is none.
    Naming a missing class, or a priority that disagrees with the class, is Forbidden."""

    name = "Priority"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def handles(self, attrs: Attributes) -> bool:
        return attrs.resource == ("", "pods") and attrs.operation == CREATE and not attrs.subresource

    async def _class(self, name: str) -> Obj | None:
        classes = self.registry.resource("scheduling.k8s.io", "v1", "priorityclasses")
        if classes is not None:
            try:
                return await classes.get("", name)
            except errors.APIError as exc:
                if exc.code != 404:
                    raise
        if name in SYSTEM_CLASSES:
            return {"metadata": {"name": name}, "value": SYSTEM_CLASSES[name]}
        return None

    async def _default_class(self) -> Obj | None:
        classes = self.registry.resource("scheduling.k8s.io", "v1", "priorityclasses")
        if classes is None:
            return None
        items = (await classes.list("", ListOptions()))["items"]
        defaults = [c for c in items if c.get("globalDefault")]
        # Two defaults can only come from a race; upstream then takes the lowest value.
        return min(defaults, key=lambda c: int(c.get("value") or 0), default=None)

    async def admit(self, attrs: Attributes) -> None:
        spec = attrs.obj.get("spec")
        if not isinstance(spec, dict):
            return  # validation reports it
        name = spec.get("priorityClassName") or ""
        if name:
            pc = await self._class(name)
            if pc is None:
                raise attrs.forbidden(f"no PriorityClass with name {name} was found")
        else:
            pc = await self._default_class()
            if pc is not None:
                spec["priorityClassName"] = meta(pc)["name"]
        priority = int(pc.get("value") or 0) if pc is not None else 0
        policy = (pc or {}).get("preemptionPolicy") or PREEMPT_LOWER_PRIORITY
        given = spec.get("priority")
        if given is not None and given != priority:
            raise attrs.forbidden(
                f"the integer value of priority ({given}) must not be provided in pod spec; "
                f"priority admission controller computed {priority} from the given PriorityClass name"
            )
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and given_policy != policy:
            raise attrs.forbidden(
                f"the string value of PreemptionPolicy ({given_policy}) must not be provided in pod spec; "
                f"priority admission controller computed {policy} from the given PriorityClass name"
            )
        spec["priority"] = priority
        spec["preemptionPolicy"] = policy


def default_chain(registry: Registry) -> AdmissionChain:
    """The built-in plugins in upstream's order."""
    from sampan.registry.limitranger import LimitRanger
    from sampan.registry.quota_admission import ResourceQuotaAdmission

    return AdmissionChain([LimitRanger(registry), Priority(registry), ResourceQuotaAdmission(registry)])

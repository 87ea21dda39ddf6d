"""Serving CustomResourceDefinitions: the loop that turns stored CRDs into entries of
the resource table (what upstream's naming, establishing and finalizing controllers do).

For each CRD it checks the names against the other CRDs and the built-in resources of
its group, installs one ResourceInfo per served version (all versions share one
storage, the "None" conversion), and reports acceptedNames, storedVersions and the
NamesAccepted / Established conditions through the status subresource. Deleting a CRD
leaves it Terminating with a finalizer until all its custom resources are gone; only
then is it removed, and its resources with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sampan.api import errors
from sampan.apiserver.resources import SCALE, STANDARD_VERBS, ResourceInfo, ResourceTable, status
from sampan.client.informer import Informer
from sampan.client.interface import Obj, ResourceRef
from sampan.client.local import LocalClient
from sampan.client.workqueue import WorkQueue, run_workers
from sampan.registry.meta import timestamp
from sampan.registry.options import DeleteOptions, ListOptions
from sampan.registry.registry import Registry
from sampan.registry.store import ResourceStore
from sampan.registry.strategy import Strategy

log = logging.getLogger(__name__)

GROUP = "apiextensions.k8s.io"
CRDS = ResourceRef(GROUP, "v1", "customresourcedefinitions", False)
FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
FIELD_MANAGER = "kube-apiserver"
# A CRD being deleted waits for custom resources with finalizers; look again this often.
CLEANUP_RETRY = 1.0


# -- pure logic ---------------------------------------------------------------------------


def _spec(crd: Obj) -> dict[str, Any]:
    spec = crd.get("spec")
    return spec if isinstance(spec, dict) else {}


def _names(crd: Obj) -> dict[str, Any]:
    names = _spec(crd).get("names")
    return names if isinstance(names, dict) else {}


def desired_names(crd: Obj) -> dict[str, Any]:
    """spec.names with the defaults upstream fills in."""
    names = dict(_names(crd))
    kind = str(names.get("kind") or "")
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", kind + "List")
    return {k: v for k, v in names.items() if v not in (None, "", [])}


def storage_version(crd: Obj) -> str:
    for v in _spec(crd).get("versions") or []:
        if isinstance(v, dict) and v.get("storage"):
            return str(v.get("name") or "")
    return ""


def resource_infos(crd: Obj, names: dict[str, Any] | None = None) -> list[ResourceInfo]:
    """One ResourceInfo per served version, named by ``names`` (the accepted names)."""
    spec = _spec(crd)
    names = names or desired_names(crd)
    group, plural, kind = str(spec.get("group") or ""), str(names.get("plural") or ""), str(names.get("kind") or "")
    if not (group and plural and kind):
        return []
    out = []
    terminating = bool((crd.get("metadata") or {}).get("deletionTimestamp"))
    for version in spec.get("versions") or []:
        if not isinstance(version, dict) or not version.get("served") or not version.get("name"):
            continue
        info = _version_info(group, plural, kind, names, spec, version)
        info.terminating = terminating
        out.append(info)
    return out


def _version_info(
    group: str, plural: str, kind: str, names: dict[str, Any], spec: dict[str, Any], version: dict[str, Any]
) -> ResourceInfo:
    subs = version.get("subresources") or {}
    subresources = {}
    scale_paths = None
    if isinstance(subs, dict) and "status" in subs:
        subresources["status"] = status(kind)
    if isinstance(subs, dict) and isinstance(subs.get("scale"), dict):
        scale = subs["scale"]
        subresources["scale"] = SCALE
        scale_paths = (
            str(scale.get("specReplicasPath") or ".spec.replicas"),
            str(scale.get("statusReplicasPath") or ""),
            str(scale.get("labelSelectorPath") or ""),
        )
    schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
    selectable = tuple(
        str(f.get("jsonPath", "")).lstrip(".") for f in version.get("selectableFields") or [] if isinstance(f, dict)
    )
    columns = version.get("additionalPrinterColumns")
    return ResourceInfo(
        group=group,
        version=str(version["name"]),
        plural=plural,
        singular=str(names.get("singular") or kind.lower()),
        kind=kind,
        namespaced=spec.get("scope", "Namespaced") != "Cluster",
        verbs=STANDARD_VERBS,
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=subresources,
        schema=schema if isinstance(schema, dict) else None,
        storage_group=group,
        custom=True,
        printer_columns=list(columns) if isinstance(columns, list) else [],  # [] = upstream's Age column
        selectable_fields=tuple(s for s in selectable if s),
        scale_paths=scale_paths,
        custom_list_kind=str(names.get("listKind") or ""),
    )


_NAME_FIELDS = (("plural", "PluralConflict"), ("singular", "SingularConflict"))
_KIND_FIELDS = (("kind", "KindConflict"), ("listKind", "ListKindConflict"))


def name_conflict(crd: Obj, others: list[Obj], table: ResourceTable) -> tuple[str, str] | None:
    """(reason, message) when a wanted name is taken in the CRD's group, else None.

    Taken means: accepted by another CRD of the group, or used by a built-in resource."""
    group = str(_spec(crd).get("group") or "")
    me = (crd.get("metadata") or {}).get("name")
    wanted = desired_names(crd)
    resources: set[str] = set()
    kinds: set[str] = set()
    for other in others:
        if (other.get("metadata") or {}).get("name") == me or _spec(other).get("group") != group:
            continue
        accepted = (other.get("status") or {}).get("acceptedNames") or {}
        resources.update(str(accepted.get(k) or "") for k in ("plural", "singular"))
        resources.update(accepted.get("shortNames") or [])
        kinds.update(str(accepted.get(k) or "") for k in ("kind", "listKind"))
    for info in table:
        if info.group == group and not info.custom:
            resources.update((info.plural, info.singular, *info.short_names))
            kinds.update((info.kind, info.list_kind))
    resources.discard("")
    kinds.discard("")
    for key, reason in _NAME_FIELDS:
        if wanted.get(key) in resources:
            return reason, f'"{wanted[key]}" is already in use'
    for short in wanted.get("shortNames") or []:
        if short in resources:
            return "ShortNamesConflict", f'"{short}" is already in use'
    for key, reason in _KIND_FIELDS:
        if wanted.get(key) in kinds:
            return reason, f'"{wanted[key]}" is already in use'
    return None


def condition(crd: Obj, ctype: str) -> dict[str, Any] | None:
    for c in (crd.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def set_condition(conditions: list[dict[str, Any]], ctype: str, state: str, reason: str, message: str) -> None:
    """Sets a condition in place; the transition time moves only when the status does."""
    for c in conditions:
        if c.get("type") == ctype:
            if c.get("status") != state:
                c["lastTransitionTime"] = timestamp()
            c.update(status=state, reason=reason, message=message)
            return
    conditions.append(
        {"type": ctype, "status": state, "lastTransitionTime": timestamp(), "reason": reason, "message": message}
    )


def desired_status(crd: Obj, conflict: tuple[str, str] | None) -> dict[str, Any]:
    """The status the loop wants for a live (not deleting) CRD."""
    current = crd.get("status") or {}
    conditions = [dict(c) for c in current.get("conditions") or [] if isinstance(c, dict)]
    out: dict[str, Any] = {"conditions": conditions}
    stored = list(current.get("storedVersions") or [])
    if conflict is None:
        out["acceptedNames"] = desired_names(crd)
        set_condition(conditions, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
        set_condition(conditions, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
    else:
        out["acceptedNames"] = current.get("acceptedNames") or {"plural": "", "kind": ""}
        set_condition(conditions, "NamesAccepted", "False", *conflict)
        if condition(crd, "Established") is None or not current.get("acceptedNames", {}).get("plural"):
            set_condition(conditions, "Established", "False", "NotAccepted", "not all names are accepted")
    storage = storage_version(crd)
    if storage and storage not in stored:
        stored.append(storage)
    out["storedVersions"] = stored
    return out


def accepted(crd: Obj) -> dict[str, Any] | None:
    """The names the CRD is served under, once NamesAccepted has been True."""
    names = (crd.get("status") or {}).get("acceptedNames") or {}
    return names if names.get("plural") and names.get("kind") else None


class CRDStrategy(Strategy):
    """Deleting a CRD marks it Terminating and adds the cleanup finalizer, so its custom
    resources are removed before it goes."""

    def before_delete(self, obj: Obj) -> bool:
        m = obj.setdefault("metadata", {})
        if m.get("deletionTimestamp"):
            return False
        finalizers = list(m.get("finalizers") or [])
        if FINALIZER not in finalizers:
            m["finalizers"] = finalizers + [FINALIZER]
        st = obj.setdefault("status", {})
        conditions = list(st.get("conditions") or [])
        message = "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"
        set_condition(conditions, "Terminating", "True", "InstanceDeletionPending", message)
        st["conditions"] = conditions
        return True


# -- the loop -----------------------------------------------------------------------------


def _signature(crd: Obj, names: dict[str, Any]) -> str:
    terminating = bool((crd.get("metadata") or {}).get("deletionTimestamp"))
    return json.dumps([_spec(crd), names, terminating], sort_keys=True, default=str)


class CRDController:
    """Runs inside the server process over the in-process client."""

    # One worker: name checks must see each other's accepted names, as upstream's single naming worker does.
    def __init__(self, registry: Registry, workers: int = 1) -> None:
        self.registry = registry
        self.client = LocalClient(registry, field_manager=FIELD_MANAGER)
        self.informer = Informer(self.client, CRDS)
        self.queue: WorkQueue[str] = WorkQueue(name="crd-establishing")
        self.workers = workers
        self._installed: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}
        self._startup: dict[str, Obj] = {}
        self._written: dict[str, Obj] = {}  # our latest status writes, until the informer catches up
        self._task: asyncio.Task[None] | None = None
        registry.set_strategy(GROUP, CRDS.plural, CRDStrategy(GROUP, CRDS.plural, True))

    @property
    def table(self) -> ResourceTable:
        return self.registry.table

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Establishes the stored CRDs before returning, then keeps following changes."""
        listed = await self.client.list(CRDS)
        items = sorted(listed["items"], key=_age)
        self._startup = {i["metadata"]["name"]: i for i in items}
        for crd in items:
            try:
                await self.sync(crd)
            except Exception:  # noqa: BLE001 - one bad CRD must not stop the server
                log.exception("establishing CRD %s failed", crd["metadata"]["name"])
        self.informer.add_handler(
            on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new), on_delete=self._enqueue
        )
        self.informer.start()
        self._task = asyncio.create_task(run_workers(self.queue, self.reconcile, self.workers), name="crd-workers")

    async def stop(self) -> None:
        self.queue.shutdown()
        await self.informer.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _enqueue(self, crd: Obj) -> None:
        self.queue.add(str((crd.get("metadata") or {}).get("name", "")))

    def _all(self) -> list[Obj]:
        listed = self.informer.list() if self.informer.has_synced() else list(self._startup.values())
        out = {o["metadata"]["name"]: o for o in listed}
        for name, written in list(self._written.items()):
            seen = out.get(name)
            if seen is None or _revision(seen) >= _revision(written):
                self._written.pop(name, None)  # the cache has it (or it is gone)
            else:
                out[name] = written
        return list(out.values())

    # -- reconcile ------------------------------------------------------------------------
    async def reconcile(self, name: str) -> float | None:
        crd = self.informer.get(name)
        if crd is None:
            self.uninstall(name)
            self._startup.pop(name, None)
            self._requeue_group_of(name)
            return None
        return await self.sync(crd)

    async def sync(self, crd: Obj) -> float | None:
        name = crd["metadata"]["name"]
        if crd["metadata"].get("deletionTimestamp"):
            names = accepted(crd)
            if names:
                self.install(crd, names)  # served until finalized: instances may have finalizers to remove
            return await self._finalize(crd)
        conflict = name_conflict(crd, self._all(), self.table)
        wanted = desired_status(crd, conflict)
        names = wanted["acceptedNames"] if conflict is None else accepted(crd)
        if names:
            self.install(crd, names)
        if _status_differs(crd.get("status") or {}, wanted):
            # A full status write (not a merge) so names dropped from acceptedNames go too.
            try:
                updated = await self.client.update(CRDS, {**crd, "status": wanted}, subresource="status")
            except errors.APIError as exc:
                if exc.code in (404, 409):
                    return None  # changed or gone meanwhile: the informer brings the news and a new pass
                raise
            self._written[name] = updated
            if name in self._startup:
                self._startup[name] = updated
            if (crd.get("status") or {}).get("acceptedNames") != wanted.get("acceptedNames"):
                self._requeue_group_of(name, _spec(crd).get("group"))
        return None

    def _requeue_group_of(self, name: str, group: Any = None) -> None:
        """Names freed or taken change what the CRD's neighbours may accept."""
        for other in self._all():
            other_name = other["metadata"]["name"]
            if other_name != name and (group is None or _spec(other).get("group") == group):
                self.queue.add(other_name)

    # -- the resource table ------------------------------------------------------------
    def install(self, crd: Obj, names: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        signature = _signature(crd, names)
        previous = self._installed.get(name)
        if previous is not None and previous[0] == signature:
            return
        infos = resource_infos(crd, names)
        keys = [(i.group, i.version, i.plural) for i in infos]
        for key in previous[1] if previous else []:
            if key not in keys:
                self.table.remove(*key)
        for info in infos:
            self.table.add(info)
        self._installed[name] = (signature, keys)
        log.info("serving %s (versions %s)", name, ", ".join(i.version for i in infos))

    def uninstall(self, name: str) -> None:
        previous = self._installed.pop(name, None)
        for key in previous[1] if previous else []:
            self.table.remove(*key)

    # -- deletion ---------------------------------------------------------------------------
    async def _finalize(self, crd: Obj) -> float | None:
        crd = {**crd, "status": dict(crd.get("status") or {})}  # the cached object is shared: never mutate it
        name = crd["metadata"]["name"]
        if FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return None
        await self._set_terminating(crd, "InstanceDeletionInProgress", "CustomResource deletion is in progress")
        remaining = await self._delete_instances(crd)
        if remaining:
            message = f"could not confirm zero CustomResources remaining: {remaining} remain"
            await self._set_terminating(crd, "InstanceDeletionCheck", message)
            return CLEANUP_RETRY
        await self._set_terminating(crd, "InstanceDeletionCompleted", "removed all instances")
        self.uninstall(name)
        finalizers = [f for f in crd["metadata"].get("finalizers") or [] if f != FINALIZER]
        # A precondition on the list, so a finalizer someone else adds meanwhile is not lost.
        ops = [
            {"op": "test", "path": "/metadata/finalizers", "value": crd["metadata"]["finalizers"]},
            {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
        ]
        try:
            await self.client.patch(CRDS, name, ops, "json")
        except errors.APIError as exc:
            if exc.code == 404:
                return None
            if exc.code in (409, 422):
                return CLEANUP_RETRY  # changed under us: look again
            raise
        return None

    async def _set_terminating(self, crd: Obj, reason: str, message: str) -> None:
        conditions = [dict(c) for c in (crd.get("status") or {}).get("conditions") or []]
        set_condition(conditions, "Terminating", "True", reason, message)
        if conditions == (crd.get("status") or {}).get("conditions"):
            return
        try:
            updated = await self.client.patch(
                CRDS, crd["metadata"]["name"], {"status": {"conditions": conditions}}, "merge", subresource="status"
            )
        except errors.APIError as exc:
            if exc.code == 404:
                return
            raise
        crd["status"] = updated.get("status") or {}

    async def _delete_instances(self, crd: Obj) -> int:
        """Deletes every custom resource of the CRD; returns how many are still there."""
        names = accepted(crd) or desired_names(crd)
        infos = resource_infos(crd, names) or _any_version_info(crd, names)
        if not infos:
            return 0
        info = infos[0]
        rs = ResourceStore(self.registry, info, self.registry.strategy(info))
        items = (await rs.list("", ListOptions()))["items"]
        for item in items:
            m = item["metadata"]
            if m.get("deletionTimestamp"):
                continue
            try:
                await rs.delete(m.get("namespace", ""), m["name"], DeleteOptions())
            except errors.APIError as exc:
                if exc.code != 404:
                    raise
        return len((await rs.list("", ListOptions()))["items"])


def _any_version_info(crd: Obj, names: dict[str, Any]) -> list[ResourceInfo]:
    """A CRD that serves no version still has storage to clean up."""
    versions = [{**v, "served": True} for v in _spec(crd).get("versions") or [] if isinstance(v, dict)]
    return resource_infos({**crd, "spec": {**_spec(crd), "versions": versions[:1]}}, names)


def _age(crd: Obj) -> tuple[str, str]:
    m = crd.get("metadata") or {}
    return str(m.get("creationTimestamp") or ""), str(m.get("name") or "")


def _status_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in wanted.items())


def _revision(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0

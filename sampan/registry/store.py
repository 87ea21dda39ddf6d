"""The generic resource store: create, get, update and patch over the key-value store.

One instance per served resource version; several versions of a resource share the
storage prefix. Objects are plain dicts stored as JSON; the store revision is their
resourceVersion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import orjson

from sampan.api import conversion, errors
from sampan.api.names import generate_name, name_rule_for, validate_object_name
from sampan.apiserver.resources import ResourceInfo
from sampan.registry import admission, deletion, hooks, listing
from sampan.registry.meta import Obj, decode, encode, meta, new_uid, timestamp
from sampan.registry.options import DeleteOptions, ListOptions, WriteOptions
from sampan.registry.shared_events import SharedDecoder
from sampan.registry.strategy import Strategy
from sampan.store import interface as st

if TYPE_CHECKING:
    from sampan.registry.registry import Registry

GENERATE_NAME_ATTEMPTS = 8
# Metadata only the server writes; a client's copy on update is ignored.
_SERVER_OWNED_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")

# Subresources that act on the whole object on the server's behalf (status included).
_ACTIONS = ("binding", "finalize")

Mutate = Callable[[Obj], Obj]
# Subresources that write one part of the object: the path of that part.
_PART_WRITTEN = {"status": ("status",), "ephemeralcontainers": ("spec", "ephemeralContainers")}


def _get_path(obj: Obj, path: tuple[str, ...]) -> Any:
    for step in path:
        obj = obj.get(step) if isinstance(obj, dict) else None
    return obj


def copy_obj(obj: Obj) -> Obj:
    return orjson.loads(orjson.dumps(obj))


class ResourceStore:
    def __init__(self, registry: Registry, info: ResourceInfo, strategy: Strategy) -> None:
        self.registry = registry
        self.info = info
        self.strategy = strategy
        self.gr = errors.GroupResource(info.group, info.plural)
        # Built-in kinds served at several versions over one storage convert on the way.
        self.conversion = None if info.custom else conversion.lookup(info.group, info.kind)
        # Watch events decoded once for every HTTP watcher of this version.
        self.shared_decoder = SharedDecoder(self.decode)

    @property
    def store(self) -> st.Store:
        return self.registry.store

    # -- helpers ----------------------------------------------------------------
    def stamp(self, obj: Obj) -> Obj:
        """Sets apiVersion/kind of the version being served (objects may be stored from another)."""
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        rest = dict(obj)
        obj.clear()
        obj.update(kind=self.info.kind, apiVersion=self.info.group_version, **rest)
        return obj

    def read(self, kv: st.KeyValue) -> Obj:
        return self.decode(kv.value, kv.revision)

    def decode(self, value: bytes, revision: int) -> Obj:
        """A stored value as an object of the served version."""
        obj = decode(value, revision)
        if self.conversion is not None:
            obj = self.conversion.from_storage(obj, self.info.group_version)
        return self.stamp(obj)

    def encode(self, obj: Obj) -> bytes:
        """An object of the served version in its storage form."""
        if self.conversion is not None:
            obj = self.conversion.to_storage(obj, self.info.group_version)
        return encode(obj)

    def key(self, namespace: str, name: str) -> str:
        return self.info.key(namespace, name)

    def check_url_identity(self, namespace: str, name: str | None, obj: Obj) -> None:
        m = meta(obj)
        if self.info.namespaced:
            body_ns = m.get("namespace") or ""
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            m["namespace"] = namespace or body_ns
        else:
            m.pop("namespace", None)
        if name is not None and m.get("name") and m["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({m['name']}) does not match the name on the URL ({name})"
            )
        if name is not None and not m.get("name"):
            m["name"] = name

    def _validate_name(self, obj: Obj, generated: bool) -> None:
        m = meta(obj)
        name = m.get("name", "")
        if not name and not generated:
            cause = errors.cause(
                "FieldValueRequired", "Required value: name or generateName is required", "metadata.name"
            )
            raise errors.invalid(self.info.kind, self.info.group, "", [cause])
        field, value = ("metadata.generateName", m["generateName"]) if generated else ("metadata.name", name)
        problems = validate_object_name(name_rule_for(self.info.group, self.info.plural), value, prefix=generated)
        if problems:
            causes = [errors.cause("FieldValueInvalid", f'Invalid value: "{value}": {p}', field) for p in problems]
            raise errors.invalid(self.info.kind, self.info.group, name, causes)

    async def _admit(
        self, obj: Obj, old: Obj | None, opts: WriteOptions, subresource: str = "", mutated: bool = False
    ) -> None:
        """Defaults, mutating admission (unless done already), validation, validating admission."""
        hooks.apply_defaults(obj, self.info)
        operation = admission.UPDATE if old is not None else admission.CREATE
        attrs = admission.Attributes(operation, self.info, obj, old, subresource, opts.dry_run, opts.user)
        if not mutated:
            await self.registry.admission.admit(attrs)
        hooks.validate(obj, old, self.info)
        causes = self.strategy.validate(obj, old)
        if causes:
            raise errors.invalid(self.info.kind, self.info.group, meta(obj).get("name", ""), causes)
        await self.registry.admission.validate(attrs)

    # -- get --------------------------------------------------------------------
    async def get(self, namespace: str, name: str) -> Obj:
        try:
            return self.read(await self.store.get(self.key(namespace, name)))
        except st.NotFound:
            raise errors.not_found(self.gr, name) from None

    # -- create -----------------------------------------------------------------
    async def create(self, namespace: str, obj: Obj, opts: WriteOptions) -> Obj:
        if self.info.terminating:
            exc = errors.method_not_supported(self.gr, "create")
            exc.status["message"] = "create not allowed while custom resource definition is terminating"
            raise exc
        self.strategy.check_decoding(obj, self.info, opts)
        self.check_url_identity(namespace, None, obj)
        m = meta(obj)
        generated = not m.get("name") and bool(m.get("generateName"))
        if generated:
            m["name"] = ""
        self._validate_name(obj, generated)
        if self.info.namespaced:
            await self.registry.admit_namespace(m["namespace"], self.gr, m.get("name", ""))
        for attr in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            m.pop(attr, None)
        m["uid"] = new_uid()
        m["creationTimestamp"] = timestamp()
        if self.strategy.tracks_generation:
            m["generation"] = 1
        else:
            m.pop("generation", None)
        self.stamp(obj)
        # Mutating admission sees the defaulted object before the strategy derives anything
        # from it (a pod's QoS class must reflect LimitRange defaults), as upstream.
        hooks.apply_defaults(obj, self.info)
        attrs = admission.Attributes(admission.CREATE, self.info, obj, None, "", opts.dry_run, opts.user)
        await self.registry.admission.admit(attrs)
        self.strategy.prepare_for_create(obj)
        await self._admit(obj, None, opts, mutated=True)
        self.strategy.record_create(obj, opts.field_manager, self.info)
        attempts = GENERATE_NAME_ATTEMPTS if generated else 1
        finish = await self.strategy.begin_create(obj, opts.dry_run)
        stored = False
        try:
            for attempt in range(attempts):
                if generated:
                    m["name"] = generate_name(m["generateName"])
                try:
                    created = await self._persist_new(obj, opts)
                    stored = True
                    return created
                except st.AlreadyExists:
                    if attempt == attempts - 1:
                        raise errors.already_exists(self.gr, m["name"]) from None
        finally:
            if finish is not None:
                await finish(stored)
        raise AssertionError("unreachable")

    async def _persist_new(self, obj: Obj, opts: WriteOptions) -> Obj:
        m = meta(obj)
        key = self.key(m.get("namespace", ""), m["name"])
        if opts.dry_run:
            try:
                await self.store.get(key)
            except st.NotFound:
                return obj
            raise st.AlreadyExists(key)
        return self.read(await self.store.create(key, self.encode(obj)))

    # -- update and patch -------------------------------------------------------
    async def update(self, namespace: str, name: str, obj: Obj, opts: WriteOptions, subresource: str = "") -> Obj:
        """PUT: ``obj`` replaces the live object (only its status for the status subresource)."""
        self.check_url_identity(namespace, name, obj)
        return await self.write(namespace, name, lambda _live: copy_obj(obj), opts, subresource)

    async def write(
        self,
        namespace: str,
        name: str,
        mutate: Mutate,
        opts: WriteOptions,
        subresource: str = "",
        operation: str = "Update",
    ) -> Obj:
        """Read-modify-write: ``mutate`` gets a copy of the live object and returns the
        wanted one. Runs again if another writer got in first."""
        key = self.key(namespace, name)
        result: dict[str, Any] = {}
        finishes: list[Any] = []

        async def try_update(current: st.KeyValue | None) -> bytes:
            assert current is not None
            while finishes:  # a lost race: undo the previous attempt's reservations
                await finishes.pop()(False)
            old = self.read(current)
            new = mutate(copy_obj(old))
            self.check_url_identity(namespace, name, new)
            await self._prepare_update(new, old, current.revision, opts, subresource, operation)
            if not subresource:
                finish = await self.strategy.begin_update(new, old, opts.dry_run)
                if finish is not None:
                    finishes.append(finish)
            result["obj"], result["old"] = new, old
            return self.encode(new)

        try:
            if opts.dry_run:
                current = await self.store.get(key)
                await try_update(current)
                meta(result["obj"])["resourceVersion"] = str(current.revision)
                return self.stamp(result["obj"])
            kv = await self.store.guaranteed_update(key, try_update)
        except BaseException as exc:
            while finishes:
                await finishes.pop()(False)
            if isinstance(exc, st.NotFound):
                raise errors.not_found(self.gr, name) from None
            raise
        while finishes:
            await finishes.pop()(True)
        new = self.read(kv)
        if self._finalized(new, result["old"]):
            return await self._remove_finalized(key, kv, new)
        return new

    async def _prepare_update(
        self, new: Obj, old: Obj, revision: int, opts: WriteOptions, subresource: str, operation: str
    ) -> None:
        # Converted kinds: the stored object came through a conversion; check all of it.
        checked = old if self.conversion is None else None
        hooks.check_decoding(new, self.info, opts.field_validation, opts.warnings, checked)
        new_meta, old_meta = meta(new), meta(old)
        requested = new_meta.get("resourceVersion")
        if requested and requested != str(revision):
            raise errors.conflict(self.gr, old_meta["name"])
        self.stamp(new)
        part = _PART_WRITTEN.get(subresource)
        if part is not None:
            # Such writes keep everything but their part and labels/annotations.
            merged = copy_obj(old)
            parent, last = merged, part[-1]
            for step in part[:-1]:
                parent = parent.setdefault(step, {})
            value = _get_path(new, part)
            if value is None:
                parent.pop(last, None)
            else:
                parent[last] = value
            for field in ("labels", "annotations"):
                if field in new_meta:
                    merged["metadata"][field] = new_meta[field]
                else:
                    merged["metadata"].pop(field, None)
            if "managedFields" in new_meta:
                merged["metadata"]["managedFields"] = new_meta["managedFields"]
            new.clear()
            new.update(merged)
            new_meta = meta(new)
        elif self.info.has_status and subresource not in _ACTIONS:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        for field in _SERVER_OWNED_META:
            if field in old_meta:
                new_meta[field] = old_meta[field]
            else:
                new_meta.pop(field, None)
        if old_meta.get("deletionTimestamp"):
            added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                cause = errors.cause(
                    "FieldValueForbidden",
                    "Forbidden: no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers {sorted(added)!r}".replace("'", '"'),
                    "metadata.finalizers",
                )
                raise errors.invalid(self.info.kind, self.info.group, old_meta["name"], [cause])
        if "managedFields" not in new_meta and "managedFields" in old_meta:
            new_meta["managedFields"] = old_meta["managedFields"]
        new_meta.pop("resourceVersion", None)
        if subresource not in _PART_WRITTEN and subresource not in _ACTIONS:
            self.strategy.prepare_for_update(new, old)
        await self._admit(new, old, opts, subresource)
        if self.strategy.tracks_generation and _spec_changed(new, old):
            new_meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if operation != "Apply":  # an apply has recorded its own field set already
            hooks.update_managed_fields(old, new, opts.field_manager, self.info, subresource)

    @staticmethod
    def _finalized(new: Obj, old: Obj) -> bool:
        """An update removed the last finalizer of an object that is being deleted."""
        m = meta(new)
        return (
            bool(m.get("deletionTimestamp"))
            and not m.get("finalizers")
            and bool(meta(old).get("finalizers"))
            and not m.get("deletionGracePeriodSeconds")
        )

    async def _remove_finalized(self, key: str, kv: st.KeyValue, new: Obj) -> Obj:
        try:
            await self.store.delete(key, st.Preconditions(revision=kv.revision))
        except (st.NotFound, st.Conflict):
            return new  # someone else deleted or changed it; their write decides
        await self.strategy.after_delete(new)
        return new

    async def patch(
        self, namespace: str, name: str, patch_type: str, body: Any, opts: WriteOptions, subresource: str = ""
    ) -> tuple[Obj, bool]:
        """Returns (object, created); only an apply patch may create."""
        if patch_type == hooks.PATCH_APPLY:
            return await self._apply(namespace, name, body, opts, subresource)

        def mutate(live: Obj) -> Obj:
            return hooks.apply_patch(patch_type, live, body, self.info)

        return await self.write(namespace, name, mutate, opts, subresource), False

    async def _apply(
        self, namespace: str, name: str, body: Any, opts: WriteOptions, subresource: str
    ) -> tuple[Obj, bool]:
        if not opts.field_manager:
            cause = errors.cause("FieldValueRequired", "Required value: is required for apply patch", "fieldManager")
            raise errors.invalid("PatchOptions", "meta.k8s.io", "", [cause])
        if not isinstance(body, dict):
            raise errors.bad_request("the apply configuration must be an object")
        self.check_url_identity(namespace, name, body)

        def mutate(live: Obj) -> Obj:
            return hooks.server_side_apply(live, body, opts.field_manager, opts.force, self.info, subresource)

        try:
            return await self.write(namespace, name, mutate, opts, subresource, operation="Apply"), False
        except errors.APIError as exc:
            if exc.code != 404 or subresource:
                raise
        base = {
            "apiVersion": self.info.group_version,
            "kind": self.info.kind,
            "metadata": {"name": name, "namespace": namespace},
        }
        created = hooks.server_side_apply(base, body, opts.field_manager, opts.force, self.info, "")
        return await self.create(namespace, created, _no_manager(opts)), True

    # -- list, watch, delete (in their own modules) --------------------------------
    async def list(self, namespace: str, opts: ListOptions) -> Obj:
        return await listing.list_objects(self, namespace, opts)

    async def watch(
        self, namespace: str, opts: ListOptions, shared: bool = False
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Raises APIError for bad options; then yields (type, object) pairs (read-only
        objects shared between watchers when ``shared``)."""
        return await listing.watch(self, namespace, opts, shared)

    async def delete(self, namespace: str, name: str, opts: DeleteOptions) -> tuple[Obj, bool]:
        return await deletion.delete(self, namespace, name, opts)

    async def delete_collection(self, namespace: str, list_opts: ListOptions, opts: DeleteOptions) -> Obj:
        """Deletes every match; returns the list of deleted (or now terminating) objects."""
        selected = await self.list(namespace, ListOptions(list_opts.label_selector, list_opts.field_selector))
        done: list[Obj] = []
        for item in selected["items"]:
            m = meta(item)
            try:
                result, removed = await self.delete(m.get("namespace", ""), m["name"], opts)
            except errors.APIError as exc:
                if exc.code == 404:
                    continue
                raise
            done.append(item if removed else result)
        selected["items"] = done
        return selected


def _no_manager(opts: WriteOptions) -> WriteOptions:
    """The apply already recorded its managed fields; creating must not add an Update entry."""
    return WriteOptions(opts.dry_run, "", opts.field_validation, opts.force, opts.user, opts.warnings)


def _spec_changed(new: Obj, old: Obj) -> bool:
    ignore = ("metadata", "status", "apiVersion", "kind")
    return {k: v for k, v in new.items() if k not in ignore} != {k: v for k, v in old.items() if k not in ignore}

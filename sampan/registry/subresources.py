"""Subresources that are views or actions on their parent object: scale, pods/binding,
pods/eviction and namespaces/finalize."""

from __future__ import annotations

from typing import Any, Callable

from sampan.api import errors
from sampan.api.schemas import schema_for
from sampan.api.selectors import SelectorError, label_selector_from_dict
from sampan.apiserver.resources import ResourceInfo
from sampan.registry import hooks
from sampan.registry.meta import Obj, encode, meta, timestamp
from sampan.registry.options import DeleteOptions, WriteOptions
from sampan.registry.store import ResourceStore, copy_obj
from sampan.store import interface as st

# Scale is not served as a resource of its own; this describes it for the patch code.
SCALE_INFO = ResourceInfo(
    "autoscaling", "v1", "scale", "scale", "Scale", True, schema=schema_for("autoscaling", "v1", "Scale")
)


# -- scale ------------------------------------------------------------------------------
BUILTIN_SCALE_PATHS = (".spec.replicas", ".status.replicas", "")


def _get_path(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set_path(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.strip(".").split(".")
    for part in parents:
        child = obj.get(part)
        obj = obj.setdefault(part, {}) if not isinstance(child, dict) else child
    obj[last] = value


def _selector(obj: Obj, selector_path: str) -> str:
    """Built-ins derive the selector from spec.selector; custom resources name a string field."""
    if selector_path:
        value = _get_path(obj, selector_path)
        return value if isinstance(value, str) else ""
    spec = obj.get("spec") or {}
    try:
        return str(label_selector_from_dict(spec.get("selector"))) if spec.get("selector") else ""
    except SelectorError:
        return ""


def to_scale(obj: Obj, paths: tuple[str, str, str] = BUILTIN_SCALE_PATHS) -> Obj:
    m = meta(obj)
    spec_path, status_path, selector_path = paths
    desired = _get_path(obj, spec_path)
    scale_meta = {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in m}
    out: Obj = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(desired if isinstance(desired, int) else (1 if not selector_path else 0))},
        "status": {"replicas": int(_get_path(obj, status_path) or 0) if status_path else 0},
    }
    selector = _selector(obj, selector_path)
    if selector:
        out["status"]["selector"] = selector
    return out


def _paths(rs: ResourceStore) -> tuple[str, str, str]:
    return rs.info.scale_paths or BUILTIN_SCALE_PATHS


async def get_scale(rs: ResourceStore, namespace: str, name: str) -> Obj:
    return to_scale(await rs.get(namespace, name), _paths(rs))


async def write_scale(
    rs: ResourceStore, namespace: str, name: str, change: Callable[[Obj], Obj], opts: WriteOptions
) -> Obj:
    """``change`` turns the current Scale into the wanted one; its spec.replicas is written back."""

    def mutate(live: Obj) -> Obj:
        scale = change(to_scale(live, _paths(rs)))
        if not isinstance(scale, dict):
            raise errors.bad_request("the body must be an autoscaling/v1 Scale")
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            detail = "must be greater than or equal to 0" if isinstance(replicas, int) else "must be an integer"
            cause = errors.cause("FieldValueInvalid", f"Invalid value: {replicas}: {detail}", "spec.replicas")
            raise errors.invalid("Scale", "autoscaling", name, [cause])
        requested = meta(scale).get("resourceVersion")
        if requested and requested != meta(live).get("resourceVersion"):
            raise errors.conflict(rs.gr, name)
        _set_path(live, _paths(rs)[0], replicas)
        return live

    return to_scale(await rs.write(namespace, name, mutate, opts, "scale"), _paths(rs))


async def update_scale(rs: ResourceStore, namespace: str, name: str, body: Obj, opts: WriteOptions) -> Obj:
    body_name = meta(body).get("name")
    if body_name and body_name != name:
        raise errors.bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
    return await write_scale(rs, namespace, name, lambda _scale: copy_obj(body), opts)


async def patch_scale(
    rs: ResourceStore, namespace: str, name: str, patch_type: str, body: Any, opts: WriteOptions
) -> Obj:
    def change(scale: Obj) -> Obj:
        if patch_type == hooks.PATCH_APPLY:
            raise errors.unsupported_media_type([hooks.PATCH_JSON, hooks.PATCH_MERGE, hooks.PATCH_STRATEGIC])
        return hooks.apply_patch(patch_type, scale, body, SCALE_INFO)

    return await write_scale(rs, namespace, name, change, opts)


# -- pods/binding ------------------------------------------------------------------------
async def bind_pod(rs: ResourceStore, namespace: str, name: str, binding: Obj, opts: WriteOptions) -> Obj:
    target = binding.get("target") or {}
    node = target.get("name")
    if not node:
        cause = errors.cause("FieldValueRequired", "Required value", "target.name")
        raise errors.invalid("Binding", "", name, [cause])
    gr = errors.GroupResource("", "pods/binding")

    def mutate(pod: Obj) -> Obj:
        spec = pod.setdefault("spec", {})
        if meta(pod).get("deletionTimestamp"):
            raise errors.conflict(gr, name, f"pod {name} is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise errors.conflict(gr, name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp()}
        )
        status["conditions"] = conditions
        return pod

    # Like upstream's BindingREST: a plain read-modify-write of the stored pod, without the
    # update path's decoding checks, validation and managedFields (the scheduler's hot path).
    uid = meta(binding).get("uid")

    def try_update(current: st.KeyValue | None) -> bytes:
        assert current is not None
        pod = rs.read(current)
        if uid and meta(pod).get("uid") != uid:
            why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta(pod).get('uid')}"
            raise errors.conflict(gr, name, why)
        return encode(mutate(pod))

    try:
        if opts.dry_run:
            try_update(await rs.store.get(rs.key(namespace, name)))
        else:
            await rs.store.guaranteed_update(rs.key(namespace, name), try_update)
    except st.NotFound:
        raise errors.not_found(errors.GroupResource("", "pods"), name) from None
    return errors.status_success()


# -- pods/eviction -----------------------------------------------------------------------
async def evict_pod(rs: ResourceStore, namespace: str, name: str, eviction: Obj, opts: WriteOptions) -> Obj:
    """Deletes the pod unless its PodDisruptionBudget forbids it (see eviction.py)."""
    from sampan.registry.eviction import evict_pod as evict

    return await evict(rs, namespace, name, eviction, opts)


# -- namespaces/finalize -----------------------------------------------------------------
async def finalize_namespace(rs: ResourceStore, name: str, body: Obj, opts: WriteOptions) -> Obj:
    hooks.check_decoding(body, rs.info, opts.field_validation, opts.warnings)
    wanted = list((body.get("spec") or {}).get("finalizers") or [])

    def mutate(ns: Obj) -> Obj:
        # An empty list, not a missing one: defaulting would put "kubernetes" back.
        ns.setdefault("spec", {})["finalizers"] = wanted
        return ns

    # Bypass the namespace strategy, which keeps spec.finalizers on ordinary updates.
    result = await rs.write("", name, mutate, opts, "finalize")
    m = meta(result)
    if m.get("deletionTimestamp") and not wanted and not m.get("finalizers") and not opts.dry_run:
        try:
            await rs.delete("", name, DeleteOptions())
        except errors.APIError as exc:
            if exc.code != 404:
                raise
    return result

"""Calls into the object-logic modules (defaults, validation, patch, managed fields).

The registry goes through these few functions so the rest of it does not care how
each module spells its API, and their errors come back as API errors.
"""

from __future__ import annotations

import base64
from typing import Any, Callable

from sampan.api import apply, conversion, crdschema, errors, patch, validation
from sampan.api.apply.merge import InvalidApply
from sampan.api.defaults import apply_defaults as apply_builtin_defaults
from sampan.api.schemas import schema_for
from sampan.api.validation.structural import check_schema
from sampan.apiserver.resources import ResourceInfo
from sampan.registry.meta import Obj, timestamp
from sampan.registry.prune import prune_unknown

PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"


def apply_defaults(obj: Obj, info: ResourceInfo) -> None:
    if not info.custom:
        apply_builtin_defaults(obj, info.group, info.version, info.kind)
    elif info.schema:
        crdschema.apply_schema_defaults(obj, info.schema)


def check_decoding(obj: Obj, info: ResourceInfo, field_validation: str, warnings: list[str],
                   old: Obj | None = None) -> None:
    """What decoding into the typed object checks upstream: field types, and unknown
    fields (400 when Strict, a warning when Warn). Runs before anything reads the body.

    ``old``: for an update of a built-in kind, the stored object (in the same version),
    which was checked and pruned when written: only the parts that differ are checked."""
    if info.custom:
        _prune_custom(obj, info, field_validation, warnings)
        return
    if info.schema is None:
        return
    causes, warns, prunable = check_schema(obj, info.schema, field_validation, old)
    warnings.extend(warns)
    if causes:
        raise errors.bad_request(validation.strict_decoding_message(info.kind, info.version, causes))
    if prunable:  # the check found unknown fields (or embedded objects): something to drop
        prune_unknown(obj, info.schema)
    if info.group == "" and info.kind == "Secret":
        fold_string_data(obj)


def fold_string_data(secret: Obj) -> None:
    """Secret.stringData is write-only: upstream conversion merges it into data, where it
    wins over a data entry with the same key, and never stores it."""
    string_data = secret.pop("stringData", None)
    if not isinstance(string_data, dict) or not string_data:
        return
    data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    secret["data"] = data


def _prune_custom(obj: Obj, info: ResourceInfo, field_validation: str, warnings: list[str]) -> None:
    """Custom resources lose fields their schema does not declare (upstream pruning)."""
    if not info.schema:
        return
    unknown = [f'unknown field "{path}"' for path in crdschema.prune(obj, info.schema)]
    if unknown and field_validation == "Strict":
        head = f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}'
        raise errors.bad_request(f"{head}: strict decoding error: " + ", ".join(unknown))
    if field_validation == "Warn":
        warnings.extend(unknown)


def validate(obj: Obj, old: Obj | None, info: ResourceInfo) -> None:
    """The kind's semantic rules (422 Invalid); custom resources are checked by their strategy."""
    if info.custom:
        return
    causes = validation.validate_builtin(obj, info.group, info.kind, old)
    if causes:
        raise errors.invalid(info.kind, info.group, (obj.get("metadata") or {}).get("name", ""), causes)


def _ignored_fields(info: ResourceInfo, subresource: str) -> tuple[str, ...] | None:
    """The main resource never owns status when status has its own endpoint."""
    return ("status",) if info.has_status and not subresource else None


def _version_views(info: ResourceInfo) -> Callable[[str], Any] | None:
    """Managers that wrote through another version of a converted kind are judged in
    that version (their field sets name its fields)."""
    conv = None if info.custom else conversion.lookup(info.group, info.kind)
    if conv is None:
        return None
    found = conv

    def view(api_version: str) -> tuple[Any, Callable[[Obj], Obj]]:
        group, _, version = api_version.rpartition("/")
        return schema_for(group, version, info.kind), lambda obj: found.convert(obj, info.group_version, api_version)

    return view


def update_managed_fields(old: Obj | None, new: Obj, manager: str, info: ResourceInfo, subresource: str) -> None:
    """Records a non-apply write (operation Update) by ``manager``."""
    if not manager:
        return
    apply.update_managed_fields(
        old,
        new,
        manager,
        info.schema,
        info.group_version,
        timestamp(),
        subresource=subresource,
        ignored_fields=_ignored_fields(info, subresource),
        views=_version_views(info),
    )


def server_side_apply(live: Obj, applied: Obj, manager: str, force: bool, info: ResourceInfo, subresource: str) -> Obj:
    try:
        return apply.server_side_apply(
            live,
            applied,
            manager,
            force,
            info.schema,
            info.group_version,
            timestamp(),
            subresource=subresource,
            ignored_fields=_ignored_fields(info, subresource),
            views=_version_views(info),
        )
    except apply.ApplyConflict as exc:
        status = errors.status_object(409, "Conflict", exc.message(), {"causes": exc.causes()})
        raise errors.APIError(status) from exc
    except InvalidApply as exc:
        raise errors.bad_request(str(exc)) from exc


def accepted_patch_types(info: ResourceInfo) -> list[str]:
    if info.custom:
        return [PATCH_JSON, PATCH_MERGE, PATCH_APPLY]  # no strategic merge without Go struct tags
    return [PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, PATCH_APPLY]


def apply_patch(patch_type: str, doc: Obj, body: Any, info: ResourceInfo) -> Obj:
    """JSON, merge and strategic patches; failures become 4xx like upstream."""
    if patch_type not in accepted_patch_types(info) or patch_type == PATCH_APPLY:
        raise errors.unsupported_media_type(accepted_patch_types(info))
    try:
        if patch_type == PATCH_JSON:
            if not isinstance(body, list):
                raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            result = patch.apply_json_patch(doc, body)
        elif not isinstance(body, dict):
            raise errors.bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
        elif patch_type == PATCH_MERGE:
            result = patch.apply_merge_patch(doc, body)
        else:
            result = patch.apply_strategic_merge_patch(doc, body, info.schema)
    except patch.PatchError as exc:
        # A JSON patch that cannot be applied (including a failed test) is 422; others 400.
        if patch_type == PATCH_JSON:
            raise errors.unprocessable(str(exc)) from exc
        raise errors.bad_request(str(exc)) from exc
    if not isinstance(result, dict):
        raise errors.bad_request("the patch produced something that is not an object")
    return result

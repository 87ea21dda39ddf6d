"""Query parameters of API requests, parsed into registry options."""

from __future__ import annotations

from aiohttp import web

from sampan.api import errors
from sampan.apiserver import keys
from sampan.registry.options import DeleteOptions, ListOptions, WriteOptions

_TRUE = ("true", "1", "True", "TRUE")
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
MAX_MANAGER_LEN = 128


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "") in _TRUE


def optional_flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    return raw in _TRUE


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(
            f'invalid value for {name}: strconv.ParseInt: parsing "{raw}": invalid syntax'
        ) from None


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid dryRun value: "{v}" (supported values: "All")')
    return bool(values)


def field_manager(request: web.Request) -> str:
    manager = request.query.get("fieldManager", "")
    if len(manager) > MAX_MANAGER_LEN:
        cause = errors.cause(
            "FieldValueTooLong", f"Too long: may not be more than {MAX_MANAGER_LEN} bytes", "fieldManager"
        )
        raise errors.invalid("PatchOptions", "meta.k8s.io", "", [cause])
    if manager:
        return manager
    # Like upstream: without fieldManager the User-Agent's product name manages the fields.
    agent = request.headers.get("User-Agent", "")
    return agent.split("/")[0][:MAX_MANAGER_LEN] if agent else "unknown"


def write_options(request: web.Request) -> WriteOptions:
    validation = request.query.get("fieldValidation", "") or "Warn"
    if validation not in FIELD_VALIDATION:
        raise errors.bad_request(
            f"fieldValidation parameter unsupported: {validation}. Valid values are Strict, Warn, Ignore"
        )
    force = optional_flag(request, "force")
    return WriteOptions(
        dry_run=dry_run(request),
        field_manager=field_manager(request),
        field_validation=validation,
        force=bool(force),
        user=request.get(keys.USER),
    )


def list_options(request: web.Request) -> ListOptions:
    q = request.query
    limit = _int(request, "limit") or 0
    timeout = _int(request, "timeoutSeconds")
    return ListOptions(
        label_selector=q.get("labelSelector", ""),
        field_selector=q.get("fieldSelector", ""),
        limit=max(0, limit),
        continue_token=q.get("continue", ""),
        resource_version=q.get("resourceVersion", ""),
        resource_version_match=q.get("resourceVersionMatch", ""),
        allow_bookmarks=flag(request, "allowWatchBookmarks"),
        send_initial_events=optional_flag(request, "sendInitialEvents"),
        timeout_seconds=float(timeout) if timeout is not None and timeout > 0 else None,
    )


def delete_options(request: web.Request, body: dict | None) -> DeleteOptions:
    """DeleteOptions from the body, overridden by query parameters (the Python client uses those)."""
    opts = DeleteOptions.from_dict(body or {})
    grace = _int(request, "gracePeriodSeconds")
    if grace is not None:
        opts.grace_period_seconds = grace
    q = request.query
    if "propagationPolicy" in q:
        opts.propagation_policy = q["propagationPolicy"]
    if "orphanDependents" in q:
        opts.orphan_dependents = q["orphanDependents"] in _TRUE
    if dry_run(request):
        opts.dry_run = True
    return opts

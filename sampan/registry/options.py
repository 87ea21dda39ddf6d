"""Options the handlers parse from a request and hand to the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"  # Strict | Warn | Ignore
    force: bool = False
    user: Any = None  # the authenticated user (sampan.apiserver.authn.UserInfo)
    warnings: list[str] = field(default_factory=list)  # filled by the registry, sent as Warning headers


@dataclass
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    # watch only
    allow_bookmarks: bool = False
    send_initial_events: bool | None = None
    timeout_seconds: float | None = None


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None  # Background | Foreground | Orphan
    orphan_dependents: bool | None = None  # deprecated form of propagationPolicy
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> DeleteOptions:
        pre = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds")
        return cls(
            grace_period_seconds=int(grace) if grace is not None else None,
            propagation_policy=body.get("propagationPolicy"),
            orphan_dependents=body.get("orphanDependents"),
            precondition_uid=pre.get("uid"),
            precondition_resource_version=pre.get("resourceVersion"),
            dry_run="All" in (body.get("dryRun") or []),
        )

"""ControllerRevisions (apps/v1) for DaemonSets and StatefulSets: each distinct pod template
is stored once as a revision named ``<owner>-<hash>``; the newest number is the update
revision, and an old template coming back has its revision renumbered (a rollback)."""

from __future__ import annotations

import copy
from typing import Any

from sampan.client.interface import CONTROLLERREVISIONS, Client, is_not_found
from sampan.controllers.util.hashing import compute_hash
from sampan.controllers.util.pods import controller_ref

Obj = dict[str, Any]

HASH_LABEL = "controller-revision-hash"
MAX_PREFIX = 223  # a name must stay under 253 characters with the hash appended


def revision_data(owner: Obj) -> Obj:
    """What a revision stores: a strategic patch that replaces the pod template."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def revision_name(owner_name: str, hash_: str) -> str:
    return f"{owner_name[:MAX_PREFIX]}-{hash_}"


def build_revision(owner: Obj, number: int, collision_count: int | None) -> Obj:
    data = revision_data(owner)
    h = compute_hash(data, collision_count)
    labels = dict((((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = h
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(owner["metadata"]["name"], h),
            "namespace": owner["metadata"].get("namespace"),
            "labels": labels,
            "ownerReferences": [controller_ref(owner)],
        },
        "data": data,
        "revision": number,
    }


def sort_revisions(revisions: list[Obj]) -> list[Obj]:
    return sorted(revisions, key=lambda r: (revision_number(r), r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]))


def equal(a: Obj, b: Obj) -> bool:
    return (a.get("data") or {}) == (b.get("data") or {})


async def create_revision(client: Client, owner: Obj, number: int, collision_count: int) -> tuple[Obj, int]:
    """Create the revision for ``owner``'s template, bumping the collision count while a
    different revision holds the name. Returns (revision, collision count)."""
    while True:
        wanted = build_revision(owner, number, collision_count)
        ns = owner["metadata"].get("namespace")
        try:
            return await client.create(CONTROLLERREVISIONS, wanted, ns), collision_count
        except Exception as exc:
            if getattr(exc, "code", 0) != 409:
                raise
        try:
            existing = await client.get(CONTROLLERREVISIONS, wanted["metadata"]["name"], ns)
        except Exception as exc:
            if is_not_found(exc):
                continue  # deleted meanwhile: try again with the same name
            raise
        if equal(existing, wanted):
            return existing, collision_count
        collision_count += 1


async def renumber(client: Client, revision: Obj, number: int) -> Obj:
    meta = revision["metadata"]
    if revision_number(revision) == number:
        return revision
    return await client.patch(CONTROLLERREVISIONS, meta["name"], {"revision": number}, "merge", meta.get("namespace"))


async def sync_revisions(client: Client, owner: Obj, revisions: list[Obj]) -> tuple[Obj, list[Obj], int]:
    """Make sure the owner's current template has the newest revision.
    Returns (update revision, all revisions sorted, collision count)."""
    revisions = sort_revisions(revisions)
    collisions = int((owner.get("status") or {}).get("collisionCount") or 0)
    next_number = (revision_number(revisions[-1]) + 1) if revisions else 1
    wanted = build_revision(owner, next_number, collisions)
    same = [r for r in revisions if equal(r, wanted)]
    if same and revisions and same[-1] is revisions[-1]:
        update = revisions[-1]
    elif same:
        update = await renumber(client, same[-1], next_number)
        revisions = sort_revisions([update if r is same[-1] else r for r in revisions])
    else:
        update, collisions = await create_revision(client, owner, next_number, collisions)
        revisions = sort_revisions([*revisions, update])
    return update, revisions, collisions


async def truncate_history(client: Client, owner: Obj, revisions: list[Obj], live: set[str]) -> None:
    """Delete the oldest revisions beyond revisionHistoryLimit, never one named in ``live``."""
    limit = int((owner.get("spec") or {}).get("revisionHistoryLimit", 10) or 0)
    candidates = [r for r in sort_revisions(revisions) if r["metadata"]["name"] not in live]
    for revision in candidates[: max(0, len(candidates) - limit)]:
        meta = revision["metadata"]
        try:
            await client.delete(CONTROLLERREVISIONS, meta["name"], meta.get("namespace"))
        except Exception as exc:
            if not is_not_found(exc):
                raise

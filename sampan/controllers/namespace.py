"""Namespace lifecycle: empties a namespace that is being deleted, then releases it.

A deleted namespace keeps its ``kubernetes`` finalizer (status.phase Terminating) until this
controller has deleted everything in it: every namespaced resource the server serves that
can be deleted, custom resources included. It reports progress in the same status
conditions upstream writes, then drops the finalizer through ``namespaces/finalize`` so the
registry removes the namespace.
"""

from __future__ import annotations

import logging
from typing import Any

from sampan.client.interface import NAMESPACES, Obj, is_not_found
from sampan.controllers.base import Controller, register
from sampan.controllers.util.conditions import rfc3339, set_condition
from sampan.controllers.util.discovery import Served, served_resources

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
# How soon to look again while content is still going away (doubles up to the cap).
RETRY_INITIAL = 0.5
RETRY_CAP = 15.0

# type -> (reason when fine, message when fine); the failing side is built per pass.
_OK = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": (
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


def _gr(served: Served) -> str:
    # Upstream prints a GroupResource as "resource.group" (so core resources end in a dot).
    return f"{served.ref.plural}.{served.ref.group}"


class _Pass:
    """What one deletion pass found."""

    def __init__(self) -> None:
        self.remaining: dict[str, int] = {}
        self.finalizers: dict[str, int] = {}
        self.failures: list[str] = []

    def note_pending(self, gr: str, obj: Obj) -> None:
        self.remaining[gr] = self.remaining.get(gr, 0) + 1
        for fin in obj.get("metadata", {}).get("finalizers") or ():
            self.finalizers[fin] = self.finalizers.get(fin, 0) + 1


@register
class NamespaceController(Controller):
    name = "namespace"
    component = "namespace-controller"
    workers = 2

    def setup(self) -> None:
        self.namespaces = self.watch(NAMESPACES)
        self._retries: dict[str, float] = {}

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            self._retries.pop(key, None)
            return None
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        found = await self._delete_content(key)
        await self._write_conditions(ns, found)
        if found.remaining or found.failures:
            delay = self._retries.get(key, RETRY_INITIAL)
            self._retries[key] = min(delay * 2, RETRY_CAP)
            if found.failures:
                raise RuntimeError(f"namespace {key}: {'; '.join(found.failures)}")
            return delay
        self._retries.pop(key, None)
        await self._finalize(key)
        return None

    async def _delete_content(self, namespace: str) -> _Pass:
        found = _Pass()
        for served in served_resources(self.client):
            if not served.ref.namespaced or not {"list", "delete"} <= served.verbs:
                continue
            gr = _gr(served)
            try:
                items = (await self.client.list(served.ref, namespace=namespace)).get("items") or []
            except Exception as exc:  # noqa: BLE001 - reported in the conditions, retried
                if not is_not_found(exc):  # a CRD removed meanwhile has nothing left
                    found.failures.append(f"{gr}: {exc}")
                continue
            for obj in items:
                meta = obj.get("metadata") or {}
                if meta.get("deletionTimestamp"):
                    found.note_pending(gr, obj)
                    continue
                try:
                    result = await self.client.delete(
                        served.ref, meta["name"], namespace, propagation_policy="Background",
                        preconditions={"uid": meta.get("uid", "")} if meta.get("uid") else None,
                    )
                except Exception as exc:  # noqa: BLE001
                    if not is_not_found(exc):
                        found.failures.append(f"{gr}: {exc}")
                    continue
                if result.get("kind") != "Status":  # still there: finalizers or a grace period
                    found.note_pending(gr, result)
        return found

    async def _write_conditions(self, ns: Obj, found: _Pass) -> None:
        status: dict[str, Any] = {"phase": "Terminating", "conditions": list((ns.get("status") or {}).get("conditions") or [])}
        now = rfc3339(self.ctx.clock())
        for type_, (reason, message) in _OK.items():
            bad: tuple[str, str] | None = None
            if type_ == "NamespaceDeletionContentFailure" and found.failures:
                bad = (
                    "ContentDeletionFailed",
                    f"Failed to delete all resource types, {len(found.failures)} remaining: "
                    + ", ".join(found.failures),
                )
            elif type_ == "NamespaceContentRemaining" and found.remaining:
                listing = ", ".join(f"{gr} has {n} resource instances" for gr, n in sorted(found.remaining.items()))
                bad = ("SomeResourcesRemain", f"Some resources are remaining: {listing}")
            elif type_ == "NamespaceFinalizersRemaining" and found.finalizers:
                listing = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(found.finalizers.items()))
                bad = ("SomeFinalizersRemain", f"Some content in the namespace has finalizers remaining: {listing}")
            cond_status, (r, m) = ("True", bad) if bad else ("False", (reason, message))
            set_condition(status, {"type": type_, "status": cond_status, "lastTransitionTime": now, "reason": r, "message": m})
        if status == {"phase": "Terminating", "conditions": (ns.get("status") or {}).get("conditions")}:
            return
        try:
            await self.client.patch(NAMESPACES, ns["metadata"]["name"], {"status": status}, "merge", subresource="status")
        except Exception as exc:
            if not is_not_found(exc):
                raise

    async def _finalize(self, name: str) -> None:
        try:
            live = await self.client.get(NAMESPACES, name)
        except Exception as exc:
            if is_not_found(exc):
                return
            raise
        finalizers = [f for f in (live.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        live.setdefault("spec", {})["finalizers"] = finalizers
        try:
            await self.client.update(NAMESPACES, live, subresource="finalize")
        except Exception as exc:
            if not is_not_found(exc):
                raise
        log.info("namespace %s: content deleted, finalizer removed", name)

"""Event retention: Events whose last occurrence is older than the TTL are deleted, like
kube-apiserver's ``--event-ttl`` (default 1 h; upstream hands each Event an etcd lease).
Without it every Event ever recorded stays in the store and the watch cache: ~3 per pod
started, more for each restart, probe failure or reschedule.

No informer: holding every Event decoded would cost more memory than the Events themselves.
Every ``ttl / 6`` a sweep lists Events page by page and deletes those last written (created or
recorded again, per creationTimestamp and managedFields) before the TTL, with their
resourceVersion as a precondition so an Event recorded again meanwhile stays.
``options.extra["event_ttl"]`` (seconds) overrides the TTL; 0 turns retention off.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sampan.client.interface import EVENTS, Obj, is_conflict, is_not_found
from sampan.controllers.base import Controller, register

log = logging.getLogger(__name__)

KEY = "event-ttl"
TTL = 3600.0
PAGE = 500


def _seconds(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def last_written(event: Obj) -> float | None:
    """When the Event was last written (created, or recorded again): upstream renews an
    Event's lease on every write. The server's own times, not the reporter's clocks."""
    meta = event.get("metadata") or {}
    candidates = [meta.get("creationTimestamp")]
    candidates += [entry.get("time") for entry in meta.get("managedFields") or () if isinstance(entry, dict)]
    times = [t for t in map(_seconds, candidates) if t is not None]
    return max(times) if times else None


@register
class EventTTLController(Controller):
    name = "event-ttl"
    component = "event-ttl-controller"

    def setup(self) -> None:
        extra = self.ctx.options.extra
        self.ttl = float(extra.get("event_ttl", TTL))
        self.period = float(extra.get("event_ttl_period", max(1.0, self.ttl / 6)))
        if self.ttl > 0:
            self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        cutoff = self.ctx.clock() - self.ttl
        deleted = 0
        continue_: str | None = None
        while True:
            page = await self.client.list(EVENTS, limit=PAGE, continue_=continue_)
            for event in page.get("items") or []:
                written = last_written(event)
                if written is not None and written < cutoff:
                    deleted += await self._delete(event)
            continue_ = (page.get("metadata") or {}).get("continue") or None
            if not continue_:
                break
        if deleted:
            log.info("event-ttl: deleted %d events older than %.0f s", deleted, self.ttl)
        return self.period

    async def _delete(self, event: Obj) -> int:
        meta = event.get("metadata") or {}
        try:
            await self.client.delete(EVENTS, meta.get("name", ""), meta.get("namespace"),
                                     preconditions={"resourceVersion": str(meta.get("resourceVersion", ""))})
        except Exception as exc:  # noqa: BLE001 - gone or recorded again: leave it
            if is_not_found(exc) or is_conflict(exc):
                return 0
            raise
        return 1

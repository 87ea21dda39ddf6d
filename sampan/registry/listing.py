"""List and watch: selectors, pagination and resourceVersion semantics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Callable

from sampan.api import errors
from sampan.api.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from sampan.registry.meta import Obj, meta
from sampan.registry.options import ListOptions
from sampan.store import interface as st

if TYPE_CHECKING:
    from sampan.registry.store import ResourceStore

# (key, value, revision, is_previous_value) -> object of the served version
Decoder = Callable[[str, bytes, int, bool], Obj]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list."
)


@dataclass
class Filter:
    labels: LabelSelector
    fields: FieldSelector
    rs: ResourceStore

    @property
    def everything(self) -> bool:
        return self.labels.empty and self.fields.empty

    def matches(self, obj: Obj) -> bool:
        if not self.labels.empty and not self.labels.matches(meta(obj).get("labels") or {}):
            return False
        return self.fields.empty or self.fields.matches(self.rs.strategy.fields(obj))


def make_filter(rs: ResourceStore, opts: ListOptions) -> Filter:
    try:
        labels = parse_label_selector(opts.label_selector or "")
        fields = parse_field_selector(opts.field_selector or "")
        if not fields.empty:
            fields = rs.strategy.convert_field_selector(fields)
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from None
    return Filter(labels, fields, rs)


def _list_options_invalid(field: str, message: str, reason: str = "FieldValueForbidden") -> errors.APIError:
    return errors.invalid("ListOptions", "meta.k8s.io", "", [errors.cause(reason, message, field)])


def parse_revision(text: str) -> int:
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise errors.bad_request(
            f"invalid resource version: strconv.ParseUint: parsing {text!r}: invalid syntax".replace("'", '"')
        )
    return value


async def _list_revision(rs: ResourceStore, opts: ListOptions) -> int:
    """The revision to read at (0: latest), per resourceVersion/resourceVersionMatch."""
    rv, match = opts.resource_version, opts.resource_version_match
    if match and match not in ("Exact", "NotOlderThan"):
        raise _list_options_invalid(
            "resourceVersionMatch",
            f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan", ""',
            "FieldValueNotSupported",
        )
    if match and not rv:
        raise _list_options_invalid(
            "resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        )
    if opts.continue_token:
        if rv and rv != "0":
            raise _list_options_invalid(
                "resourceVersion", "Forbidden: specifying resource version is not allowed when using continue"
            )
        return 0
    revision = parse_revision(rv)
    if match == "Exact" and revision == 0:
        raise _list_options_invalid(
            "resourceVersionMatch", 'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
        )
    if revision == 0:
        return 0
    current = await rs.store.current_revision()
    if revision > current:
        raise errors.timeout(
            f"Too large resource version: {revision}, current: {current}",
            1,
            [errors.cause("ResourceVersionTooLarge", "Too large resource version")],
        )
    # Legacy rule: a resourceVersion with a limit and no match pins the list to it.
    exact = match == "Exact" or (not match and opts.limit > 0)
    return revision if exact else 0


async def list_objects(rs: ResourceStore, namespace: str, opts: ListOptions) -> Obj:
    flt = make_filter(rs, opts)
    at = await _list_revision(rs, opts)
    prefix = rs.info.collection_prefix(namespace)
    limit = max(0, opts.limit)
    items: list[Obj] = []
    token: str | None = opts.continue_token or None
    revision, next_token, remaining = at, None, None
    try:
        while True:
            page = await rs.store.list(prefix, limit=limit, continue_token=token, at_revision=at)
            revision = at = page.revision
            overflow = None
            for kv in page.items:
                if limit and len(items) == limit:
                    overflow = kv.key
                    break
                obj = rs.decode(kv.value, kv.revision)
                if flt.matches(obj):
                    items.append(obj)
            if overflow is not None:
                next_token = st.encode_continue(prefix, revision, overflow)
                break
            next_token = page.continue_token
            if flt.everything:
                remaining = page.remaining
            if not next_token or (limit and len(items) >= limit):
                break
            token = next_token
    except st.Compacted as exc:
        if opts.continue_token:
            raise errors.expired(CONTINUE_EXPIRED) from None
        raise errors.expired(f"too old resource version: {exc.requested} ({exc.compacted})") from None
    except st.InvalidContinue as exc:
        raise errors.bad_request(str(exc)) from None
    list_meta: Obj = {"resourceVersion": str(revision)}
    if next_token:
        list_meta["continue"] = next_token
        if remaining:
            list_meta["remainingItemCount"] = remaining
    return {"kind": rs.info.list_kind, "apiVersion": rs.info.group_version, "metadata": list_meta, "items": items}


def _check_watch_options(opts: ListOptions) -> None:
    if opts.send_initial_events is not None:
        if opts.resource_version_match != "NotOlderThan":
            raise _list_options_invalid(
                "sendInitialEvents",
                "Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to "
                "NotOlderThan",
            )
        if not opts.allow_bookmarks:
            raise _list_options_invalid(
                "allowWatchBookmarks", "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"
            )
    elif opts.resource_version_match:
        raise _list_options_invalid(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )


def bookmark(rs: ResourceStore, revision: int, initial_end: bool = False) -> Obj:
    m: Obj = {"resourceVersion": str(revision)}
    if initial_end:
        m["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": rs.info.kind, "apiVersion": rs.info.group_version, "metadata": m}


async def watch(
    rs: ResourceStore, namespace: str, opts: ListOptions, shared: bool = False
) -> AsyncIterator[tuple[str, Obj]]:
    """Validates and opens the watch (raising APIError for bad options), then returns
    (type, object) pairs; an expired resourceVersion gives one ERROR event. With
    ``shared`` the objects are decoded once for all shared watchers and must not be mutated."""
    _check_watch_options(opts)
    flt = make_filter(rs, opts)
    since = parse_revision(opts.resource_version)
    legacy_initial = opts.send_initial_events is None and since == 0
    send_initial = bool(opts.send_initial_events) or legacy_initial
    interval = rs.registry.bookmark_interval if opts.allow_bookmarks else None
    prefix = rs.info.collection_prefix(namespace)
    try:
        w = await rs.store.watch(prefix, 0 if send_initial else since, send_initial, interval)
    except st.Compacted as exc:
        return _expired(exc)
    decode = rs.shared_decoder if shared else _private_decoder(rs)
    return _events(rs, flt, w, opts, legacy_initial, decode)


def _private_decoder(rs: ResourceStore) -> Decoder:
    def decode(key: str, value: bytes, revision: int, prev: bool = False) -> Obj:
        return rs.decode(value, revision)

    return decode


async def _expired(exc: st.Compacted) -> AsyncIterator[tuple[str, Obj]]:
    yield "ERROR", errors.expired(f"too old resource version: {exc.requested} ({exc.compacted})").status


async def _events(
    rs: ResourceStore, flt: Filter, w: st.Watch, opts: ListOptions, legacy_initial: bool, decode: Decoder
) -> AsyncIterator[tuple[str, Obj]]:
    try:
        async for event in w:
            if event.type == "BOOKMARK":
                # A legacy watch (no sendInitialEvents) does not announce the end of its initial events.
                if event.initial_events_end and legacy_initial:
                    continue
                if opts.allow_bookmarks:
                    yield "BOOKMARK", bookmark(rs, event.revision, event.initial_events_end)
                continue
            out = _translate(flt, event, decode)
            if out is not None:
                yield out
    except st.Compacted as exc:
        yield "ERROR", errors.expired(f"too old resource version: {exc.requested} ({exc.compacted})").status
    except st.Unavailable as exc:
        yield "ERROR", errors.gone(str(exc)).status
    finally:
        w.close()


def _translate(flt: Filter, event: st.Event, decode: Decoder) -> tuple[str, Obj] | None:
    """Selector transitions: entering the selection is ADDED, leaving it is DELETED."""
    value = event.value if event.type != "DELETED" else (event.value or event.prev_value)
    if value is None:
        return None
    obj = decode(event.key, value, event.revision, False)
    if flt.everything:
        return event.type, obj
    now = flt.matches(obj)
    if event.type != "MODIFIED":
        return (event.type, obj) if now else None
    prev = event.prev_value
    before = flt.matches(decode(event.key, prev, event.revision, True)) if prev is not None else now
    if now:
        return ("MODIFIED" if before else "ADDED"), obj
    if before:
        return "DELETED", decode(event.key, prev, event.revision, True)  # type: ignore[arg-type]
    return None

"""managedFields bookkeeping: server-side apply and ordinary writes.

Entries are identified like upstream: (manager, operation, apiVersion, subresource)
for updates, and (manager, subresource) for appliers, whose apiVersion follows
their latest apply. Field sets are :mod:`fieldpath` sets; object walks are in
:mod:`merge`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from sampan.api.apply import fieldpath as fp
from sampan.api.apply import merge as mg
from sampan.api.apply import renewal
from sampan.api.apply.fieldpath import EMPTY, FieldSet, Path

APPLY, UPDATE = "Apply", "Update"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"

# Fields nobody owns: identity and server-maintained metadata.
_STRIPPED: FieldSet = frozenset(
    fp.make_path(*p) for p in (
        ("apiVersion",), ("kind",), ("metadata",),
        *(("metadata", name) for name in (
            "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
            "generation", "managedFields", "resourceVersion")),
    ))


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    fields: FieldSet
    time: str | None = None

    @property
    def ident(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation,
                "" if self.operation == APPLY else self.api_version, self.subresource)

    def identifier(self) -> str:
        """Upstream's manager identifier (JSON); conflicts are sorted by it."""
        body: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.operation != APPLY and self.api_version:
            body["apiVersion"] = self.api_version
        if self.subresource:
            body["subresource"] = self.subresource
        return json.dumps(body, separators=(",", ":"))

    def display(self) -> str:
        """How upstream names a manager in conflict messages."""
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation}
        if self.api_version:
            out["apiVersion"] = self.api_version
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = fp.fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


Managers = dict[tuple[str, str, str, str], Entry]


class ApplyConflict(Exception):
    """An apply would change fields other managers own (HTTP 409)."""

    def __init__(self, found: list[tuple[Entry, Path]]) -> None:
        self._found = sorted(found, key=lambda c: (c[0].identifier(), c[1]))
        self.conflicts: list[tuple[str, str]] = [(e.manager, fp.path_string(p)) for e, p in self._found]
        super().__init__(self.message())

    def causes(self) -> list[dict[str, str]]:
        return [{"reason": "FieldManagerConflict", "message": f"conflict with {e.display()}",
                 "field": fp.path_string(p)} for e, p in self._found]

    def message(self) -> str:
        if len(self._found) == 1:
            entry, path = self._found[0]
            return f"Apply failed with 1 conflict: conflict with {entry.display()}: {fp.path_string(path)}"
        lines: list[str] = []
        last = None
        for entry, path in self._found:
            if entry.identifier() != last:
                last = entry.identifier()
                lines.append(f"conflicts with {entry.display()}:")
            lines.append(f"- {fp.path_string(path)}")
        return f"Apply failed with {len(self._found)} conflicts: " + "\n".join(lines)


# --- decoding and encoding -------------------------------------------------------------

def decode(entries: Any) -> Managers:
    """managedFields → entries by identity; raises ValueError on malformed data."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    out: Managers = {}
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise ValueError(f"managed fields entry {i} must be an object")
        if raw.get("operation") not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        if not raw.get("apiVersion"):
            raise ValueError("apiVersion must not be empty")
        if raw.get("fieldsType") != "FieldsV1":
            raise ValueError(f"invalid fieldsType in managed fields entry {i}")
        entry = Entry(str(raw.get("manager", "")), raw["operation"], raw["apiVersion"],
                      str(raw.get("subresource") or ""), fp.parse_fields_v1(raw.get("fieldsV1") or {}),
                      raw.get("time"))
        if entry.ident in out:
            raise ValueError(f"duplicate managed fields entry for {entry.identifier()}")
        out[entry.ident] = entry
    return out


def _seconds(time: str | None) -> float:
    if not time:
        return 0.0
    try:
        return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0.0


def encode(managers: Managers) -> list[dict[str, Any]]:
    """Entries in upstream order: appliers first, then by time, name, version, subresource."""
    live = [e for e in managers.values() if e.fields]
    if len(live) > 1:
        live.sort(key=lambda e: (e.operation, _seconds(e.time), e.manager, e.api_version, e.subresource))
    return [e.encode() for e in live]


def _cap_updaters(managers: Managers) -> None:
    """Folds the oldest update entries into per-version "ancient-changes" entries."""
    if sum(1 for e in managers.values() if e.operation == UPDATE) <= MAX_UPDATE_MANAGERS:
        return  # nothing to fold (the common case): skip sorting
    updaters = sorted((e for e in managers.values() if e.operation == UPDATE),
                      key=lambda e: (_seconds(e.time), e.identifier()))
    count = len(updaters)
    first_by_version: dict[str, Entry] = {}
    for entry in updaters:
        if count <= MAX_UPDATE_MANAGERS:
            break
        first = first_by_version.setdefault(entry.api_version, entry)
        if first is entry:
            continue
        bucket = Entry(ANCIENT_CHANGES, UPDATE, entry.api_version, "", EMPTY)
        if bucket.ident not in managers:
            managers.pop(first.ident, None)
            bucket.fields = first.fields
            managers[bucket.ident] = bucket
        bucket = managers[bucket.ident]
        bucket.fields = bucket.fields | entry.fields
        bucket.time = entry.time
        del managers[entry.ident]
        count -= 1


# --- helpers ---------------------------------------------------------------------------

def _body(obj: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy without managedFields."""
    if obj is None:
        return {}
    out = copy.deepcopy(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return out


def _view(obj: dict[str, Any] | None) -> dict[str, Any]:
    """Like :func:`_body` but sharing everything except the top two levels: for read-only
    comparisons, where a deep copy of the whole object is wasted work."""
    if obj is None:
        return {}
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _ignored(subresource: str, ignored_fields: Iterable[str] | None) -> FieldSet:
    if ignored_fields is None:
        ignored_fields = ("spec",) if subresource == "status" else ()
    return frozenset(fp.make_path(*name.split(".")) for name in ignored_fields if name)


def _set_managed(obj: dict[str, Any], managers: Managers) -> None:
    _cap_updaters(managers)
    encoded = encode(managers)
    meta = obj.setdefault("metadata", {})
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


# Other served versions of the same object (built-in kinds converted over one storage):
# apiVersion -> (that version's schema, a function converting from the request's version).
VersionViews = Callable[[str], "tuple[dict[str, Any] | None, Callable[[dict[str, Any]], dict[str, Any]]] | None"]


class _Diffs:
    """What a write changed and removed, as each manager sees it in its own apiVersion:
    like upstream, old and new are compared again converted to that version."""

    def __init__(self, before: dict[str, Any], after: dict[str, Any], schema: dict[str, Any] | None,
                 api_version: str, ignored: FieldSet, views: VersionViews | None, zero_structs: bool = False) -> None:
        self._before, self._after, self._ignored, self._views = before, after, ignored, views
        self._api_version = api_version
        self._by_version = {api_version: self._compare(before, after, schema, zero_structs)}

    def _compare(self, before: dict[str, Any], after: dict[str, Any], schema: dict[str, Any] | None,
                 zero_structs: bool = False) -> tuple[FieldSet, FieldSet]:
        diff = mg.compare(before, after, schema, zero_structs=zero_structs)
        return (fp.recursive_difference(diff.changed(), self._ignored),
                fp.recursive_difference(diff.removed, self._ignored))

    def of(self, entry: Entry | None) -> tuple[FieldSet, FieldSet]:
        """(changed, removed) in ``entry``'s version (None: the request's)."""
        version = entry.api_version if entry is not None and entry.api_version else self._api_version
        found = self._by_version.get(version)
        if found is not None:
            return found
        found = self._by_version[self._api_version]
        view = self._views(version) if self._views is not None else None
        if view is not None:
            schema, convert = view
            try:
                found = self._compare(convert(self._before), convert(self._after), mg.root_schema(schema))
            except ValueError:
                pass  # not convertible: judge it in the request's version
        self._by_version[version] = found
        return found


def _take_each(managers: Managers, skip: tuple[str, str, str, str] | None, diffs: _Diffs) -> None:
    """Every other manager loses what the write changed or removed, in its own version."""
    for ident in list(managers):
        if ident != skip:
            changed, removed = diffs.of(managers[ident])
            entry = managers[ident]
            entry.fields = entry.fields - changed - removed
            if not entry.fields:
                del managers[ident]


# --- server-side apply -----------------------------------------------------------------

def server_side_apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool,
                      schema: dict[str, Any] | None, api_version: str, now: str, subresource: str = "",
                      ignored_fields: Iterable[str] | None = None,
                      views: VersionViews | None = None) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` onto ``live`` (None: create).

    Raises :class:`ApplyConflict` when another manager owns a field whose value
    would change (unless ``force``), and :class:`merge.InvalidApply` for bad input.
    ``ignored_fields`` (dotted paths, e.g. ``"status"``) are never owned; by default
    nothing for the main resource and ``spec`` for the status subresource.
    """
    if not isinstance(applied, dict):
        raise mg.InvalidApply("apply patch must be an object")
    meta = applied.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise mg.InvalidApply("metadata.managedFields must be nil")
    version = applied.get("apiVersion")
    if version and api_version and version != api_version:
        raise mg.InvalidApply(f"Incorrect version specified in apply patch. Specified patch version: "
                              f"{version}, expected: {api_version}")
    try:
        return _apply(live, applied, manager, force, schema, api_version, now, subresource, ignored_fields, views)
    except ApplyConflict as conflict:
        if manager != "kubectl" or force or live is None:
            raise
        allowed = _allowed_by_last_applied(live, schema, api_version)
        remaining = [(e, p) for e, p in conflict._found if p not in allowed]
        if remaining:
            raise ApplyConflict(remaining) from None
        # Every conflict is a field kubectl's client-side apply set: take them over.
        return _apply(live, applied, manager, True, schema, api_version, now, subresource, ignored_fields, views)


def _apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool,
           schema: dict[str, Any] | None, api_version: str, now: str, subresource: str,
           ignored_fields: Iterable[str] | None, views: VersionViews | None = None) -> dict[str, Any]:
    schema = mg.root_schema(schema)
    ignored = _ignored(subresource, ignored_fields)
    managers = _decode_or_empty(live.get("metadata", {}).get("managedFields")) if live else {}
    before = _body(live)
    config = copy.deepcopy(applied)

    merged = mg.merge(before, config, schema)
    applied_set = fp.recursive_difference(mg.field_set(config, schema), ignored)
    me = Entry(manager, APPLY, api_version, subresource, applied_set, now)
    previous = managers.get(me.ident)
    managers[me.ident] = me

    if previous is not None and previous.fields:
        # Remove what this manager applied before, dropped now, and nobody else owns.
        owned = mg.with_named_fields(frozenset().union(*(e.fields for e in managers.values())), schema)
        pruned = mg.remove_unowned(merged, mg.with_named_fields(previous.fields, schema), owned, schema)
        merged = {} if pruned is mg.MISSING else pruned

    diffs = _Diffs(before, merged, schema, api_version, ignored, views)
    found = [(e, p) for ident, e in managers.items() if ident != me.ident for p in e.fields & diffs.of(e)[0]]
    if found and not force:
        raise ApplyConflict(found)
    _take_each(managers, me.ident, diffs)

    me.fields = me.fields - _STRIPPED
    if not me.fields:
        del managers[me.ident]
    if mg.same(merged, before):
        me.time = previous.time if previous else None  # a no-op apply leaves time alone
    _sync_last_applied(merged, applied, manager)
    _set_managed(merged, managers)
    return merged


def _allowed_by_last_applied(live: dict[str, Any], schema: dict[str, Any] | None, api_version: str) -> FieldSet:
    """Fields whose live values still match kubectl's last-applied annotation."""
    text = (live.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return EMPTY
    try:
        last = json.loads(text)
    except ValueError:
        return EMPTY
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return EMPTY
    schema = mg.root_schema(schema)
    try:
        fields = mg.field_set(last, schema)
    except mg.InvalidApply:
        return EMPTY
    diff = mg.compare(last, _body(live), schema)
    return fields - diff.added - diff.modified - diff.removed


def _sync_last_applied(merged: dict[str, Any], applied: dict[str, Any], manager: str) -> None:
    """kubectl's server-side applies keep an existing last-applied annotation current."""
    annotations = merged.get("metadata", {}).get("annotations")
    if manager != "kubectl" or not isinstance(annotations, dict) or LAST_APPLIED not in annotations:
        return
    config = copy.deepcopy(applied)
    config_annotations = config.get("metadata", {}).get("annotations")
    if isinstance(config_annotations, dict):
        config_annotations.pop(LAST_APPLIED, None)
    annotations[LAST_APPLIED] = _go_sorted_json(config) + "\n"


def _go_sorted_json(value: Any) -> str:
    # Go marshals maps with sorted keys.
    return fp.go_json(json.loads(json.dumps(value, sort_keys=True)))


# --- ordinary writes ---------------------------------------------------------------------

def _is_reset(entries: Any) -> bool:
    return isinstance(entries, list) and (entries == [] or entries == [{}])


def update_managed_fields(old: dict[str, Any] | None, new: dict[str, Any], manager: str,
                          schema: dict[str, Any] | None, api_version: str, now: str,
                          subresource: str = "", operation: str = UPDATE,
                          ignored_fields: Iterable[str] | None = None, views: VersionViews | None = None) -> None:
    """Records a create/update/patch by ``manager`` in ``new["metadata"]["managedFields"]``.

    Managed fields the client sent are kept (that is how clients edit them); an
    empty list or ``[{}]`` clears them; anything else unusable falls back to the
    stored ones. Subresource writes always start from the stored ones.
    """
    meta = new.setdefault("metadata", {})
    sent = meta.get("managedFields")
    stored = (old or {}).get("metadata", {}).get("managedFields")
    if subresource:
        managers = _decode_or_empty(stored)
    elif _is_reset(sent):
        managers = {}
    else:
        managers = _decode_or_empty(sent)
        if not managers:
            managers = _decode_or_empty(stored)

    if not managers and old is not None:
        # Upstream stops tracking an existing object that has no managed fields.
        meta.pop("managedFields", None)
        return

    ignored = _ignored(subresource, ignored_fields)
    before, after = _view(old), _view(new)
    if old is not None and _renewed(managers, before, after, manager, operation, api_version, subresource,
                                    ignored, now):
        _set_managed(new, managers)
        return
    schema = mg.root_schema(schema)
    # A create is compared with the kind's zero value, where nested structs already exist.
    diffs = _Diffs(before, after, schema, api_version, ignored, views, zero_structs=old is None)
    _take_each(managers, None, diffs)

    gained = diffs.of(None)[0] - _STRIPPED
    if gained:
        me = Entry(manager, operation, api_version, subresource, gained, now)
        if me.ident in managers:
            me.fields = me.fields | managers[me.ident].fields
        managers[me.ident] = me
    _set_managed(new, managers)


def _renewed(managers: Managers, before: dict[str, Any], after: dict[str, Any], manager: str, operation: str,
             api_version: str, subresource: str, ignored: FieldSet, now: str) -> bool:
    """The same manager rewrote only scalars it alone owns (a renewal): the full
    comparison would just refresh its time, so do only that."""
    mine = managers.get((manager, operation, api_version, subresource))
    if mine is None or operation != UPDATE or any(e.api_version != api_version for e in managers.values()):
        return False
    # The server's own metadata (resourceVersion...) is never owned: leave it out of the walk.
    changes = renewal.scalar_changes(renewal.without_server_meta(before), renewal.without_server_meta(after))
    if changes is None:
        return False
    others = [e.fields for e in managers.values() if e is not mine]
    if not renewal.only_owner(changes, mine.fields, others, ignored, _STRIPPED):
        return False
    if any(renewal.owns_server_meta(e.fields) for e in managers.values()):
        return False
    if len(managers) > 1 and not mine.fields - changes:
        return False  # the full way drops and re-adds the entry, moving it last
    mine.time = now
    return True


def _decode_or_empty(entries: Any) -> Managers:
    try:
        return decode(entries)
    except ValueError:
        return {}

"""Events: the most written kind (every scheduled pod, every controller action).

Components build their Events from the same few fields every time, so the create path
remembers, per *shape* of the body (its dict keys and the JSON type of each leaf), what
the two costly steps concluded: the decoding checks (types, unknown fields) and the
managed fields an Update by a manager records. Both depend only on that shape, never on
the values, so a body of a known shape skips them with the same outcome. Bodies with
lists, or a shape never seen clean, take the full path; nothing else changes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import orjson

from sampan.registry import hooks
from sampan.registry.meta import Obj, timestamp
from sampan.registry.strategy import Strategy

if TYPE_CHECKING:
    from sampan.apiserver.resources import ResourceInfo
    from sampan.registry.options import WriteOptions

_MISSING = object()
# Distinct shapes remembered; events from one component come in a handful of shapes.
MEMO_SIZE = 256


def shape(value: Obj) -> Hashable | None:
    """The keys and JSON leaf types of an object, nested objects included; None when it
    holds a list (whose field sets depend on item values), a float or a non-JSON value."""
    if type(value) is not dict:
        return None
    types = tuple(map(type, value.values()))
    key: Hashable = (tuple(value), types)
    if not _LEAVES.issuperset(types):
        if not _LEAVES_AND_DICT.issuperset(types):
            return None
        nested = tuple(shape(v) for v in value.values() if type(v) is dict)
        if None in nested:
            return None
        key = (key, nested)
    return key


_LEAVES = frozenset({str, int, bool, type(None)})
_LEAVES_AND_DICT = _LEAVES | {dict}


class _Memo(OrderedDict[Hashable, Any]):
    def remember(self, key: Hashable, value: Any) -> None:
        self[key] = value
        if len(self) > MEMO_SIZE:
            self.popitem(last=False)


class EventStrategy(Strategy):
    """core/v1 and events.k8s.io/v1 Events."""

    def __init__(self, group: str, plural: str, has_status: bool, custom: bool = False) -> None:
        super().__init__(group, plural, has_status, custom)
        self._clean = _Memo()  # shapes that passed the decoding checks untouched
        self._fields = _Memo()  # (shape, manager, version) -> managedFields entry

    def check_decoding(self, obj: Obj, info: ResourceInfo, opts: WriteOptions) -> None:
        key = shape(obj)
        if key is not None and self._clean.get((key, info.group_version), _MISSING) is info.schema:
            return
        before = len(opts.warnings)
        hooks.check_decoding(obj, info, opts.field_validation, opts.warnings)
        # Clean means: no error (or we would not be here), no warning, nothing pruned.
        if key is not None and len(opts.warnings) == before and shape(obj) == key:
            self._clean.remember((key, info.group_version), info.schema)

    def record_create(self, obj: Obj, manager: str, info: ResourceInfo) -> None:
        if not manager:
            return
        key = shape(obj)
        if key is None:
            hooks.update_managed_fields(None, obj, manager, info, "")
            return
        slot = (key, manager, info.group_version)
        hit = self._fields.get(slot)
        if hit is not None and hit[0] is info.schema:
            entry = orjson.loads(hit[1])
            entry["time"] = timestamp()
            obj["metadata"]["managedFields"] = [entry]
            return
        hooks.update_managed_fields(None, obj, manager, info, "")
        entries = obj.get("metadata", {}).get("managedFields")
        if isinstance(entries, list) and len(entries) == 1 and "time" in entries[0]:
            self._fields.remember(slot, (info.schema, orjson.dumps(entries[0])))

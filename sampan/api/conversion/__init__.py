"""Conversion between the versions of a built-in kind that share one storage.

Upstream converts every version through an internal type; here each kind names the
version its objects are stored in and registers converters between that version and
each other served version. The registry calls ``to_storage`` before writing and
``from_storage`` after reading, so reads, lists, watches and writes through any
version see the same objects. Converters never mutate their input.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

Obj = dict[str, Any]
ConvertFn = Callable[[Obj], Obj]


@dataclass
class KindConversion:
    """One kind's versions: ``storage_version`` is an apiVersion ("v1", "autoscaling/v2")."""

    storage_version: str
    converters: dict[tuple[str, str], ConvertFn] = field(default_factory=dict)

    def to_storage(self, obj: Obj, version: str) -> Obj:
        """``obj`` written through ``version`` (an apiVersion), in the storage version."""
        return self.convert(obj, version, self.storage_version)

    def from_storage(self, obj: Obj, version: str) -> Obj:
        """A stored object as served through ``version``. Objects carry the apiVersion
        they were stored in; one without it is taken to be in the storage version."""
        source = obj.get("apiVersion") or self.storage_version
        return self.convert(obj, source, version)

    def convert(self, obj: Obj, source: str, target: str) -> Obj:
        if source == target:
            return obj
        fn = self.converters.get((source, target))
        if fn is None:
            # Via the storage version (covers two non-storage versions).
            to_hub = self.converters.get((source, self.storage_version))
            from_hub = self.converters.get((self.storage_version, target))
            if to_hub is None or from_hub is None:
                raise ConversionError(f"no conversion from {source} to {target}")
            return from_hub(to_hub(obj))
        return fn(obj)


class ConversionError(ValueError):
    pass


_KINDS: dict[tuple[str, str], KindConversion] = {}


def register(groups: tuple[str, ...], kind: str, conversion: KindConversion) -> None:
    """``groups``: every API group serving the kind over the same storage."""
    for group in groups:
        _KINDS[(group, kind)] = conversion


def lookup(group: str, kind: str) -> KindConversion | None:
    return _KINDS.get((group, kind))


def base(obj: Obj, api_version: str, kind: str) -> Obj:
    """A new object with ``obj``'s metadata, of another apiVersion."""
    out: Obj = {"apiVersion": api_version, "kind": kind}
    if "metadata" in obj:
        out["metadata"] = copy.deepcopy(obj["metadata"])
    return out


def copy_fields(src: Obj, dst: Obj, pairs: tuple[tuple[str, str], ...]) -> None:
    """Copies src[a] to dst[b] for each (a, b) present in ``src``."""
    for a, b in pairs:
        if a in src:
            dst[b] = copy.deepcopy(src[a])


from sampan.api.conversion import autoscaling, events  # noqa: E402,F401  (register the kinds)

"""Compact copies of objects for informer caches inside the server process.

Cached objects are read-only by contract, so equal parts of different objects can be one
object: the containers, tolerations, labels and owner references of a ReplicaSet's pods,
the conditions written in the same second, every ``{}``. ``Compactor`` rebuilds an object
bottom-up, replacing each sub-dict and sub-list with an equal one it has seen before (and
strings with interned ones), and leaves ``metadata.managedFields`` out: no in-process
consumer reads it, an update without it keeps the stored one, and it is the largest part
of most objects.

With ``SAMPAN_CHECK_INFORMER_MUTATIONS=1`` (tests) the copies are frozen instead: any
in-place change of a cached object raises ``CachedObjectMutated`` where it happens.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

Obj = dict[str, Any]
_intern = sys.intern

# Strings longer than this are rarely repeated (messages, certificates, scripts).
MAX_INTERNED = 96
# Depth 0-1 (the object, its metadata/spec/status) is unique per object: not worth a table entry.
MIN_SHARED_DEPTH = 2


def check_mutations() -> bool:
    return os.environ.get("SAMPAN_CHECK_INFORMER_MUTATIONS", "") == "1"


class Compactor:
    """Shares equal sub-objects between the objects it compacts (hash-consing)."""

    def __init__(self, drop_managed_fields: bool = True) -> None:
        self.drop_managed_fields = drop_managed_fields
        # Keyed by the hash of (kind, children): smaller than keeping the key tuples; a hit is
        # checked against the candidate, and a collision just leaves the candidate unshared.
        self._table: dict[int, Any] = {}
        self._sweep_at = 4096

    def __len__(self) -> int:
        return len(self._table)

    def __call__(self, obj: Obj) -> Obj:
        meta = obj.get("metadata")
        if self.drop_managed_fields and isinstance(meta, dict) and "managedFields" in meta:
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        try:
            out = self._dict(obj, 0)
        except RecursionError:
            return obj  # nested deeper than the walk can go (a custom resource): kept as it is
        if len(self._table) >= self._sweep_at:
            self.sweep()
        return out

    # The walk is the hot path (every object an informer receives): one function, no
    # helper calls per leaf. A key is (marker, then per entry [name,] leaf value or the
    # id of the already shared child); scalars of different types that compare equal
    # (True, 1, 1.0) may collide, which _same's check turns into "not shared".
    def _dict(self, value: Obj, depth: int) -> Obj:
        out: Obj = {}
        key: list[Any] = ["d"]
        for name, item in value.items():
            name = _intern(name)  # orjson's key cache is small: managedFields' keys evict the rest
            kind = type(item)
            if kind is str:
                if len(item) <= MAX_INTERNED:
                    item = _intern(item)
                key += (name, item)
            elif kind is dict:
                item = self._dict(item, depth + 1)
                key += (name, id(item))
            elif kind is list:
                item = self._list(item, depth + 1)
                key += (name, id(item))
            else:
                key += (name, item)
            out[name] = item
        if depth < MIN_SHARED_DEPTH:
            return out
        return self._share(hash(tuple(key)), out)

    def _list(self, value: list[Any], depth: int) -> list[Any]:
        out: list[Any] = []
        key: list[Any] = ["l"]
        for item in value:
            kind = type(item)
            if kind is str:
                if len(item) <= MAX_INTERNED:
                    item = _intern(item)
                key.append(item)
            elif kind is dict:
                item = self._dict(item, depth + 1)
                key.append(id(item))
            elif kind is list:
                item = self._list(item, depth + 1)
                key.append(id(item))
            else:
                key.append(item)
            out.append(item)
        if depth < MIN_SHARED_DEPTH:
            return out
        return self._share(hash(tuple(key)), out)

    def _share(self, key: int, value: Any) -> Any:
        found = self._table.get(key)
        if found is None:
            self._table[key] = value
            return value
        return found if _same(found, value) else value

    def sweep(self) -> None:
        """Forgets parts no cached object uses any more (a parent holds its children, so they
        go at a later sweep)."""
        table = self._table
        # 2 references: the table's and getrefcount's argument.
        dead = [key for key in table if sys.getrefcount(table[key]) <= 2]
        for key in dead:
            del self._table[key]
        # Parents freed now free their children for the next sweep; sweep again when the
        # table has doubled over what survived, so the cost stays proportional to growth.
        self._sweep_at = max(4096, 2 * len(self._table))


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON, given that equal sub-containers of both are already one object."""
    if type(a) is not type(b) or len(a) != len(b):
        return False
    if type(a) is dict:
        return all(k1 == k2 and _same_leaf(v1, v2) for (k1, v1), (k2, v2) in zip(a.items(), b.items()))
    return all(_same_leaf(x, y) for x, y in zip(a, b))


def _same_leaf(x: Any, y: Any) -> bool:
    if x is y:
        return True
    kind = type(x)
    return kind is type(y) and kind is not dict and kind is not list and x == y


# -- mutation checks (tests) ------------------------------------------------------------------


class CachedObjectMutated(TypeError):
    pass


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise CachedObjectMutated("informer cache objects are shared and read-only: copy before changing")


class FrozenDict(dict):  # type: ignore[type-arg]
    __slots__ = ()
    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __copy__(self) -> Obj:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Obj:
        return thaw(self)


class FrozenList(list):  # type: ignore[type-arg]
    __slots__ = ()
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return thaw(self)


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


def informer_transform() -> Any:
    """The transform for informers shared by the server's in-process components."""
    compactor = Compactor()
    if check_mutations():
        return lambda obj: freeze(compactor(obj))
    return compactor

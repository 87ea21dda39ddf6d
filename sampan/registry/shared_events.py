"""Watch events decoded once and shared by every watcher of a resource version.

The watch hub hands the same Event (and so the same stored bytes) to all watchers,
so the first watcher to reach an event decodes it and the others reuse that object.
Shared objects are read-only by contract: only the HTTP watch path, which encodes
them and never mutates them, asks for them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from sampan.registry.meta import Obj

# Enough for watchers lagging a few thousand events behind the fastest one; older
# events are simply decoded again.
DEFAULT_SIZE = 4096


class SharedDecoder:
    def __init__(self, decode: Callable[[bytes, int], Obj], size: int = DEFAULT_SIZE) -> None:
        self._decode = decode
        self._size = size
        self._entries: OrderedDict[tuple[str, int, bool], tuple[bytes, Obj]] = OrderedDict()

    def __call__(self, key: str, value: bytes, revision: int, prev: bool = False) -> Obj:
        slot = (key, revision, prev)
        hit = self._entries.get(slot)
        # The identity check keeps a reloaded or different store from ever matching.
        if hit is not None and hit[0] is value:
            return hit[1]
        obj = self._decode(value, revision)
        self._entries[slot] = (value, obj)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return obj


class LineCache:
    """Encoded watch lines per (shared object, event type, output form)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, str, str], tuple[Obj, bytes]] = OrderedDict()

    def get(self, obj: Obj, kind: str, form: str, encode: Callable[[], bytes]) -> bytes:
        slot = (id(obj), kind, form)
        hit = self._entries.get(slot)
        # Holding the object keeps its id from being reused while the entry lives.
        if hit is not None and hit[0] is obj:
            return hit[1]
        line = encode()
        self._entries[slot] = (obj, line)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return line

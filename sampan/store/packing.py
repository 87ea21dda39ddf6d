"""Compressed values for the watch cache.

The watch cache holds every stored object of the cluster. Objects of one resource are
much alike (a pod's JSON is mostly field names, managedFields and defaults), so each value
is deflated with a preset dictionary: an earlier value of the same resource. A 4 KB pod
becomes ~300 bytes, at ~40 us to pack on a write and ~9 us to unpack on a read (decoding
the JSON afterwards costs ~60 us).

Each packed value keeps a reference to the dictionary it was packed with, so a resource's
dictionary can be replaced (when its values drift away from it) without repacking.
"""

from __future__ import annotations

import zlib

# Smaller values are kept as they are: too little to gain.
MIN_PACKED = 256
LEVEL = 1
# Every this many values of a resource, check how well its dictionary still does.
REVIEW_EVERY = 1000
# Packed / raw above this over the last review period: take a fresh dictionary.
POOR_RATIO = 0.35
WINDOW = 32 * 1024


class Packed:
    """A value deflated with ``zdict``; ``size`` is the raw length."""

    __slots__ = ("data", "zdict", "size")

    def __init__(self, data: bytes, zdict: bytes, size: int) -> None:
        self.data = data
        self.zdict = zdict
        self.size = size


Stored = bytes | Packed


class _Group:
    __slots__ = ("zdict", "raw", "packed", "count")

    def __init__(self, zdict: bytes) -> None:
        self.zdict = zdict
        self.raw = self.packed = self.count = 0


class Packer:
    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}

    def pack(self, key: str, value: bytes) -> Stored:
        if len(value) < MIN_PACKED:
            return value
        name = _resource(key)
        group = self._groups.get(name)
        if group is None:
            # The first value of a resource is its first dictionary.
            self._groups[name] = _Group(_dictionary(value))
            return value
        packer = zlib.compressobj(LEVEL, zdict=group.zdict)
        data = packer.compress(value) + packer.flush()
        if len(data) >= len(value):
            return value
        packed = Packed(data, group.zdict, len(value))
        group.raw += len(value)
        group.packed += len(data)
        group.count += 1
        if group.count >= REVIEW_EVERY:
            if group.packed > POOR_RATIO * group.raw:
                group.zdict = _dictionary(value)  # the values changed shape: learn from a recent one
            group.raw = group.packed = group.count = 0
        return packed

    @staticmethod
    def unpack(stored: Stored) -> bytes:
        if type(stored) is bytes:
            return stored
        assert isinstance(stored, Packed)
        unpacker = zlib.decompressobj(zdict=stored.zdict)
        return unpacker.decompress(stored.data) + unpacker.flush()


def _dictionary(value: bytes) -> bytes:
    """Deflate only looks back 32 KB: a longer value's tail is all of it that helps."""
    return value if len(value) <= WINDOW else value[-WINDOW:]


def _resource(key: str) -> str:
    """``/registry/<group>/<plural>/`` of a key: one dictionary per resource."""
    parts = key.split("/", 4)
    return "/".join(parts[:4]) if len(parts) > 4 else ""

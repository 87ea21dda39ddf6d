"""Watch cache value packing: exact round trips, dictionaries per resource."""

from __future__ import annotations

import random

import orjson

from sampan.store import packing
from sampan.store.packing import Packed, Packer


def value(i: int, shape: str = "pod") -> bytes:
    return orjson.dumps({"kind": shape, "metadata": {"name": f"{shape}-{i}", "uid": f"{i:032x}"},
                         "spec": {f"{shape}-field-{j}": f"value-{j}" for j in range(30)}})


def test_values_round_trip_and_shrink() -> None:
    packer = Packer()
    stored = [packer.pack(f"/registry/core/pods/ns/p{i}", value(i)) for i in range(50)]
    assert stored[0] == value(0)  # the first value of a resource becomes its dictionary
    assert all(isinstance(s, Packed) for s in stored[1:])
    assert all(Packer.unpack(s) == value(i) for i, s in enumerate(stored))
    assert sum(len(s.data) for s in stored[1:]) < 0.2 * sum(len(value(i)) for i in range(1, 50))


def test_small_values_and_unknown_keys_stay_as_they_are() -> None:
    packer = Packer()
    assert packer.pack("/registry/core/pods/ns/a", b"{}") == b"{}"
    assert Packer.unpack(b'{"a":1}') == b'{"a":1}'
    assert packer.pack("odd-key", value(1)) == value(1)  # first of its group: kept raw
    assert Packer.unpack(packer.pack("odd-key", value(2))) == value(2)


def test_resources_have_their_own_dictionary_and_a_poor_one_is_replaced(monkeypatch) -> None:
    monkeypatch.setattr(packing, "REVIEW_EVERY", 10)
    packer = Packer()
    pod = packer.pack("/registry/core/pods/ns/a", value(0))
    node = packer.pack("/registry/core/nodes/n0", value(0, "node"))
    assert pod == value(0) and node == value(0, "node")
    first = packer.pack("/registry/core/pods/ns/b", value(1))
    assert isinstance(first, Packed) and first.zdict == value(0)
    # Values unlike the dictionary: after a review period the resource takes a recent one.
    blob = random.Random(7).randbytes(600).hex()
    odd_values = [orjson.dumps({"other": blob, "i": i}) for i in range(25)]
    odd = [packer.pack("/registry/core/pods/ns/x", v) for v in odd_values]
    later = odd[-1]
    assert isinstance(later, Packed) and later.zdict != value(0)
    assert len(later.data) < 0.1 * later.size
    assert Packer.unpack(first) == value(1)  # packed with the old dictionary, still readable
    assert [Packer.unpack(s) for s in odd] == odd_values


def test_a_large_first_value_gives_a_dictionary_of_one_window() -> None:
    packer = Packer()
    big = bytes(range(256)) * 400  # 100 KB
    assert packer.pack("/registry/core/configmaps/ns/a", big) == big
    later = packer.pack("/registry/core/configmaps/ns/b", big + b"x")
    assert isinstance(later, Packed) and len(later.zdict) == packing.WINDOW
    assert Packer.unpack(later) == big + b"x"

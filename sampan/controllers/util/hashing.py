"""Stable short hashes of pod templates (pod-template-hash, controller-revision-hash).

Upstream hashes a deep dump of the object with FNV-32a, mixes in the collision count and
renders the number with a vowel-free alphabet so it can't spell words; we do the same over
canonical JSON, so the value is stable across processes and restarts.
"""

from __future__ import annotations

import json
from typing import Any

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
# Upstream's alphabet for safe encoding (no vowels, no look-alike characters).
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes, h: int = _FNV32_OFFSET) -> int:
    for byte in data:
        h ^= byte
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in text)


def compute_hash(obj: Any, collision_count: int | None = None) -> str:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    h = fnv32a(data)
    if collision_count is not None:
        h = fnv32a(int(collision_count).to_bytes(4, "little", signed=False), h)
    return safe_encode(str(h))

"""Field paths, field sets and their FieldsV1 encoding (as stored in managedFields).

A path element is a small tuple whose first item orders the kinds the way the
upstream structured-merge-diff library does (field names, then list keys, then
set values, then indexes), so sorting plain tuples gives upstream's order:

- ``(0, "name")``                      ``f:name``     a struct field or map key
- ``(1, (("name", v1), ...))``         ``k:{...}``    an item of a keyed list
- ``(2, v)``                           ``v:<json>``   an item of a set
- ``(3, 7)``                           ``i:7``        an item by index

Values inside keys and set items are "frozen" (see :func:`freeze`) so they are
hashable and compare like upstream values (numbers < strings < bools < lists
< maps < null). A field set is a plain ``frozenset`` of paths (tuples of
elements); a path is a member when it is in the set.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

import orjson

PathElement = tuple[int, Any]
Path = tuple[PathElement, ...]
FieldSet = frozenset[Path]

FIELD, KEY, VALUE, INDEX = 0, 1, 2, 3
_PREFIX = {FIELD: "f:", KEY: "k:", VALUE: "v:", INDEX: "i:"}

# Value ranks, in upstream comparison order.
_NUM, _STR, _BOOL, _LIST, _MAP, _NULL = range(6)

EMPTY: FieldSet = frozenset()


def freeze(value: Any) -> tuple[Any, ...]:
    """A hashable, upstream-ordered form of a JSON value."""
    if value is None:
        return (_NULL,)
    if isinstance(value, bool):  # before int: bool is an int in Python
        return (_BOOL, value)
    if isinstance(value, (int, float)):
        return (_NUM, value)
    if isinstance(value, str):
        return (_STR, value)
    if isinstance(value, list):
        return (_LIST, tuple(freeze(v) for v in value))
    if isinstance(value, dict):
        return (_MAP, tuple(sorted((k, freeze(v)) for k, v in value.items())))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def thaw(frozen: tuple[Any, ...]) -> Any:
    rank = frozen[0]
    if rank == _NULL:
        return None
    if rank == _LIST:
        return [thaw(v) for v in frozen[1]]
    if rank == _MAP:
        return {k: thaw(v) for k, v in frozen[1]}
    return frozen[1]


def field(name: str) -> PathElement:
    return (FIELD, name)


def key(fields: dict[str, Any]) -> PathElement:
    return (KEY, tuple(sorted((k, freeze(v)) for k, v in fields.items())))


def set_value(value: Any) -> PathElement:
    return (VALUE, freeze(value))


def index(i: int) -> PathElement:
    return (INDEX, i)


def make_path(*parts: str | PathElement) -> Path:
    """``make_path("spec", "replicas")``; strings are field names."""
    return tuple(field(p) if isinstance(p, str) else p for p in parts)


# --- JSON text the way Go's encoding/json writes it -------------------------

def go_json(value: Any) -> str:
    """Compact JSON with Go's HTML-safe escaping (upstream writes keys this way)."""
    text = json.dumps(_go_numbers(value), separators=(",", ":"), ensure_ascii=False)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                     ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text


def _go_numbers(value: Any) -> Any:
    # Go prints a whole float64 without a fraction (1.0 -> 1).
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    return value


# --- element <-> text --------------------------------------------------------

@functools.lru_cache(maxsize=16384)
def serialize_element(pe: PathElement) -> str:
    # Cached: the same keys (container names, condition types, ports) recur in every object.
    kind, data = pe
    if kind == FIELD:
        return "f:" + data
    if kind == KEY:
        return "k:{" + ",".join(go_json(n) + ":" + go_json(thaw(v)) for n, v in data) + "}"
    if kind == VALUE:
        return "v:" + go_json(thaw(data))
    return f"i:{data}"


def parse_element(text: str) -> PathElement:
    if len(text) < 2 or text[1] != ":":
        raise ValueError(f"invalid path element {text!r}")
    kind, body = text[0], text[2:]
    if kind == "f":
        return field(body)
    if kind == "k":
        fields = json.loads(body)
        if not isinstance(fields, dict):
            raise ValueError(f"invalid key path element {text!r}")
        return key(fields)
    if kind == "v":
        return set_value(json.loads(body))
    if kind == "i":
        return index(int(body))
    raise ValueError(f"unknown path element type in {text!r}")


def _value_string(frozen: tuple[Any, ...]) -> str:
    # Go's fmt of a value: strings quoted, others bare.
    value = thaw(frozen)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return go_json(value)
    return str(_go_numbers(value))


def element_string(pe: PathElement) -> str:
    kind, data = pe
    if kind == FIELD:
        return "." + data
    if kind == KEY:
        return "[" + ",".join(f"{n}={_value_string(v)}" for n, v in data) + "]"
    if kind == VALUE:
        return f"[={_value_string(data)}]"
    return f"[{data}]"


def path_string(path: Path) -> str:
    """The human form used in conflict messages: ``.spec.containers[name="x"].image``."""
    return "".join(element_string(pe) for pe in path)


# --- FieldsV1 -----------------------------------------------------------------

# Encodings and parses of recent field sets: most writes store the same few sets again
# (every renewal of a lease, every status write of pods from one template).
_ENCODED: dict[FieldSet, bytes] = {}
_PARSED: dict[bytes, FieldSet] = {}
_CACHE_LIMIT = 4096


def fields_v1(fieldset: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 JSON object for a field set, keys in upstream order.

    A path that is a member and also has members below it gets a ``"."`` entry.
    """
    if isinstance(fieldset, frozenset):
        found = _ENCODED.get(fieldset)
        if found is None:
            if len(_ENCODED) >= _CACHE_LIMIT:
                _ENCODED.clear()
            found = _ENCODED[fieldset] = orjson.dumps(_fields_v1(fieldset))
        return orjson.loads(found)  # a fresh object: callers may change it
    return _fields_v1(fieldset)


def _fields_v1(fieldset: Iterable[Path]) -> dict[str, Any]:
    members = set(fieldset)
    trie: dict[PathElement, Any] = {}
    for path in members:
        node = trie
        for pe in path:
            node = node.setdefault(pe, {})
    return _emit(trie, (), members)


def _emit(node: dict[PathElement, Any], prefix: Path, members: set[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pe in sorted(node):
        path = prefix + (pe,)
        child = _emit(node[pe], path, members)
        if child and path in members:
            child = {".": {}, **child}
        out[serialize_element(pe)] = child
    return out


def parse_fields_v1(data: dict[str, Any]) -> FieldSet:
    """The field set a FieldsV1 object describes."""
    try:
        text = orjson.dumps(data)
    except TypeError:
        return _parse_fields_v1(data)
    found = _PARSED.get(text)
    if found is None:
        if len(_PARSED) >= _CACHE_LIMIT:
            _PARSED.clear()
        found = _PARSED[text] = _parse_fields_v1(data)
    return found


def _parse_fields_v1(data: dict[str, Any]) -> FieldSet:
    out: set[Path] = set()
    _collect(data, (), out)
    return frozenset(out)


def _collect(node: Any, prefix: Path, out: set[Path]) -> None:
    if not isinstance(node, dict):
        raise ValueError("FieldsV1 nodes must be objects")
    for text, child in node.items():
        if text == ".":
            if prefix:
                out.add(prefix)
            continue
        path = prefix + (parse_element(text),)
        if not child:
            out.add(path)
        else:
            _collect(child, path, out)


# --- set helpers ----------------------------------------------------------------

def recursive_difference(fieldset: Iterable[Path], remove: Iterable[Path]) -> FieldSet:
    """Drops every member of ``remove`` and everything below it."""
    roots = set(remove)
    if not roots:
        return frozenset(fieldset)
    return frozenset(p for p in fieldset
                     if not any(p[:i] in roots for i in range(1, len(p) + 1)))

"""The part of Kubernetes JSONPath that CRD printer columns use.

Supported: ``.a.b``, ``.a\\.b`` (escaped dot in a key), ``['a.b']``, ``[0]``, ``[-1]``,
``[*]``, ``.*``, ``[1:3]``, ``..a`` (recursive), and filters such as
``[?(@.type=="Ready")]`` with ``==, !=, <, <=, >, >=`` or a bare ``[?(@.a)]`` test.
Missing keys yield no result rather than an error, as the server allows them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["JSONPathError", "compile_path", "find"]


class JSONPathError(ValueError):
    pass


Step = Callable[[list[Any]], list[Any]]


@dataclass
class Path:
    steps: list[Step]

    def find(self, data: Any) -> list[Any]:
        nodes = [data]
        for step in self.steps:
            nodes = step(nodes)
        return nodes


def compile_path(expression: str) -> Path:
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[Step] = []
    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("..", i):
            key, i = _read_key(text, i + 2)
            steps.append(_recursive(key))
        elif char == ".":
            key, i = _read_key(text, i + 1)
            if key == "*":
                steps.append(_wildcard)
            elif key:
                steps.append(_field(key))
        elif char == "[":
            end = _matching_bracket(text, i)
            steps.append(_bracket(text[i + 1:end].strip()))
            i = end + 1
        else:
            # A leading name without a dot ("spec.x") is read as a field too.
            key, i = _read_key(text, i)
            if not key:
                raise JSONPathError(f"unexpected {char!r} in {expression!r}")
            steps.append(_field(key))
    return Path(steps)


def find(expression: str, data: Any) -> list[Any]:
    return compile_path(expression).find(data)


def _read_key(text: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(text) and text[i] not in ".[":
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out), i


def _matching_bracket(text: str, start: int) -> int:
    depth, quote = 0, ""
    for i in range(start, len(text)):
        char = text[i]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return i
    raise JSONPathError(f"unclosed bracket in {text!r}")


def _field(key: str) -> Step:
    return lambda nodes: [n[key] for n in nodes if isinstance(n, dict) and key in n]


def _wildcard(nodes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if isinstance(node, dict):
            out.extend(node[k] for k in sorted(node))
        elif isinstance(node, list):
            out.extend(node)
    return out


def _recursive(key: str) -> Step:
    def walk(node: Any, out: list[Any]) -> None:
        if isinstance(node, dict):
            if key in node:
                out.append(node[key])
            for k in sorted(node):
                walk(node[k], out)
        elif isinstance(node, list):
            for item in node:
                walk(item, out)

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            walk(node, out)
        return out

    return step


_INDEX = re.compile(r"^-?\d+$")
_SLICE = re.compile(r"^(-?\d*):(-?\d*)(?::(-?\d+))?$")


def _bracket(inner: str) -> Step:
    if inner == "*":
        return _wildcard
    if inner[:1] in "'\"" and inner[-1:] == inner[:1]:
        return _field(inner[1:-1])
    if _INDEX.match(inner):
        index = int(inner)
        return lambda nodes: [n[index] for n in nodes if isinstance(n, list) and -len(n) <= index < len(n)]
    match = _SLICE.match(inner)
    if match:
        start, stop, stride = (int(g) if g else None for g in match.groups())
        return lambda nodes: [x for n in nodes if isinstance(n, list) for x in n[start:stop:stride]]
    if inner.startswith("?(") and inner.endswith(")"):
        return _filter(inner[2:-1].strip())
    raise JSONPathError(f"unsupported subscript [{inner}]")


_COMPARE = re.compile(r"^(@[^=!<>]*?)\s*(==|!=|<=|>=|<|>)\s*(.+)$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _literal(text: str) -> Any:
    text = text.strip()
    if text[:1] in "'\"" and text[-1:] == text[:1]:
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _filter(condition: str) -> Step:
    match = _COMPARE.match(condition)
    left = compile_path((match.group(1) if match else condition)[1:])
    op = _OPS[match.group(2)] if match else None
    right = _literal(match.group(3)) if match else None

    def keep(item: Any) -> bool:
        values = left.find(item)
        if op is None:
            return bool(values)
        for value in values:
            try:
                if op(value, right):
                    return True
            except TypeError:
                continue
        return False

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            items = node if isinstance(node, list) else list(node.values()) if isinstance(node, dict) else []
            out.extend(item for item in items if keep(item))
        return out

    return step

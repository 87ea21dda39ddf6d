"""Label and field selectors with Kubernetes' syntax, semantics and error text.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
``a``, ``!a``, ``a>1``, ``a<1``, joined by commas (AND).  Field selectors:
``f=v``, ``f==v``, ``f!=v`` joined by commas, with ``\\``, ``\\,`` and ``\\=``
escapes in values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Mapping

from sampan.api.names import is_qualified_name, is_valid_label_value


class SelectorError(ValueError):
    """A selector could not be parsed; the message is upstream's wording."""


# Operators as apimachinery's selection package spells them.
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = [IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN]
_ALL_OPERATORS = _BINARY_OPERATORS + [EXISTS, DOES_NOT_EXIST]


# --- error text in the style of apimachinery's field.Error ----------------------------------


def _go_quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _go_value(value: object) -> str:
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, (list, tuple)):
        return "[]string{" + ", ".join(_go_quote(v) for v in value) + "}"
    return str(value)


def _invalid(path: str, value: object, detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def _aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _key_error(key: str, path: str) -> str | None:
    errs = is_qualified_name(key)
    return _invalid(path, key, "; ".join(errs)) if errs else None


def _is_int64(text: str) -> bool:
    # Like Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits only.
    body = text[1:] if text[:1] in "+-" else text
    if not body.isascii() or not body.isdigit():
        return False
    return -(2**63) <= int(text) < 2**63


# --- label selectors --------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def create(cls, key: str, operator: str, values: Iterable[str] = (), path: str = "") -> Requirement:
        """Build a validated requirement (upstream NewRequirement); raises SelectorError."""
        vals = tuple(values)
        prefix = path + "." if path else ""
        errs: list[str] = []
        if (e := _key_error(key, prefix + "key")) is not None:
            errs.append(e)
        values_path = prefix + "values"
        if operator in (IN, NOT_IN):
            if not vals:
                errs.append(_invalid(values_path, vals, "for 'in', 'notin' operators, values set can't be empty"))
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(vals) != 1:
                errs.append(_invalid(values_path, vals, "exact-match compatibility requires one single value"))
        elif operator in (EXISTS, DOES_NOT_EXIST):
            if vals:
                errs.append(_invalid(values_path, vals, "values set must be empty for exists and does not exist"))
        elif operator in (GREATER_THAN, LESS_THAN):
            if len(vals) != 1:
                errs.append(_invalid(values_path, vals, "for 'Gt', 'Lt' operators, exactly one value is required"))
            for i, v in enumerate(vals):
                if not _is_int64(v):
                    detail = "for 'Gt', 'Lt' operators, the value must be an integer"
                    errs.append(_invalid(f"{values_path}[{i}]", v, detail))
        else:
            supported = ", ".join(_go_quote(o) for o in _ALL_OPERATORS)
            errs.append(f"{prefix}operator: Unsupported value: {_go_quote(operator)}: supported values: {supported}")
        for i, v in enumerate(vals):
            label_errs = is_valid_label_value(v)
            if label_errs:
                errs.append(_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(label_errs)))
        if errs:
            raise SelectorError(_aggregate(errs))
        return cls(key, operator, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        present = self.key in labels
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if op == EXISTS:
            return present
        if op == DOES_NOT_EXIST:
            return not present
        if op in (GREATER_THAN, LESS_THAN):
            if not present or len(self.values) != 1:
                return False
            have, want = labels[self.key], self.values[0]
            if not (_is_int64(have) and _is_int64(want)):
                return False
            return int(have) > int(want) if op == GREATER_THAN else int(have) < int(want)
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        # Sorted on output only, as upstream does, so the stored order is kept.
        vals = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({vals})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{vals}"


class LabelSelector:
    """An AND of requirements; or the special selector that matches nothing."""

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        self.requirements: tuple[Requirement, ...] = tuple(sorted(requirements, key=lambda r: r.key))
        self.nothing = nothing

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def match_nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have, if the selector pins one."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "LabelSelector(nothing)" if self.nothing else f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return (self.nothing, self.requirements) == (other.nothing, other.requirements)

    def __hash__(self) -> int:
        return hash((self.nothing, self.requirements))


# Lexer tokens.
_ERROR, _EOS, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _IDENT, _IN, _LT, _NEQ, _NOTIN, _OPEN = range(14)
_TOKENS = {
    ")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _DEQ, "=": _EQ, ">": _GT,
    "in": _IN, "<": _LT, "!=": _NEQ, "notin": _NOTIN, "(": _OPEN,
}
_SPECIAL = set("=!(),><")
_SPACE = set(" \t\r\n")


def _lex(text: str) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            items.append((_EOS, ""))
            return items
        if text[i] in _SPECIAL:
            # Longest run of symbols that still forms a known operator.
            buf, best, j = "", None, i
            while j < n and text[j] in _SPECIAL:
                buf += text[j]
                if buf in _TOKENS:
                    best = (_TOKENS[buf], buf, j + 1)
                elif best is not None:
                    break
                j += 1
            if best is None:
                items.append((_ERROR, f"error expected: keyword found '{buf}'"))
                i = j
            else:
                items.append(best[:2])
                i = best[2]
        else:
            j = i
            while j < n and text[j] not in _SPECIAL and text[j] not in _SPACE:
                j += 1
            word = text[i:j]
            items.append((_TOKENS.get(word, _IDENT), word))
            i = j


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    @staticmethod
    def _as_value(tok: int) -> int:
        # Inside values, the keywords 'in' and 'notin' are plain identifiers.
        return _IDENT if tok in (_IN, _NOTIN) else tok

    def peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        return (self._as_value(tok) if values else tok), lit

    def take(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.peek(values)
        self.pos += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok == _EOS:
                return reqs
            if tok not in (_IDENT, _NOT):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except SelectorError as e:
                raise SelectorError(f"unable to parse requirement: {e}") from None
            tok, lit = self.take()
            if tok == _EOS:
                return reqs
            if tok != _COMMA:
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self.peek()
            if tok not in (_IDENT, _NOT):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        tok, key = self.take()
        negated = tok == _NOT
        if negated:
            tok, key = self.take()
        if tok != _IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        if (e := _key_error(key, "<nil>")) is not None:
            raise SelectorError(e)
        if negated or self.peek()[0] in (_EOS, _COMMA):
            return Requirement.create(key, DOES_NOT_EXIST if negated else EXISTS)
        tok, lit = self.take(values=False)
        op = {_IN: IN, _NOTIN: NOT_IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _NEQ: NOT_EQUALS,
              _GT: GREATER_THAN, _LT: LESS_THAN}.get(tok)
        if op is None:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        values = self.value_set() if op in (IN, NOT_IN) else self.exact_value()
        return Requirement.create(key, op, sorted(values))

    def value_set(self) -> set[str]:
        tok, lit = self.take()
        if tok != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok == _CLOSE:  # "()" means the one empty value
            self.take()
            return {""}
        if tok not in (_IDENT, _COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self.identifier_list()
        if self.take()[0] != _CLOSE:
            raise SelectorError(f"found '{lit}', expected: ')'")
        return values

    def identifier_list(self) -> set[str]:
        # Empty entries ("(,a)", "(a,)", "(a,,b)") stand for the empty value.
        values: set[str] = set()
        while True:
            tok, lit = self.take()
            if tok == _IDENT:
                values.add(lit)
                nxt, nlit = self.peek()
                if nxt == _CLOSE:
                    return values
                if nxt != _COMMA:
                    raise SelectorError(f"found '{nlit}', expected: ',' or ')'")
            elif tok == _COMMA:
                if not values:
                    values.add("")
                nxt = self.peek()[0]
                if nxt == _CLOSE:
                    values.add("")
                    return values
                if nxt == _COMMA:
                    values.add("")
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.peek()[0] in (_EOS, _COMMA):
            return {""}
        tok, lit = self.take()
        if tok == _IDENT:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query string; raises SelectorError."""
    return LabelSelector(_LabelParser(text).parse())


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """A selector requiring exactly these labels (unvalidated, like SelectorFromSet)."""
    return LabelSelector(Requirement(k, EQUALS, (v,)) for k, v in (labels or {}).items())


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_dict(spec: Mapping | None) -> LabelSelector:
    """Convert a metav1.LabelSelector; None matches nothing, {} matches everything."""
    if spec is None:
        return LabelSelector.match_nothing()
    match_labels = spec.get("matchLabels") or {}
    expressions = spec.get("matchExpressions") or []
    reqs = [Requirement.create(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in expressions:
        op = _EXPRESSION_OPERATORS.get(expr.get("operator", ""))
        if op is None:
            raise SelectorError(f"{_go_quote(str(expr.get('operator', '')))} is not a valid label selector operator")
        reqs.append(Requirement.create(expr.get("key", ""), op, list(expr.get("values") or [])))
    return LabelSelector(reqs)


# --- field selectors --------------------------------------------------------------------------


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    escaped = False
    for c in value:
        if escaped:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            # Upstream prints the rune with %v, i.e. as its code point number.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped with a backslash."""
    terms: list[str] = []
    start, escaped = 0, False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


class FieldSelector:
    """An AND of ``field = value`` / ``field != value`` terms."""

    def __init__(self, requirements: Iterable[tuple[str, str, str]] = ()) -> None:
        self.requirements: list[tuple[str, str, str]] = list(requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        # A field the object does not have reads as "" (upstream fields.Set.Get).
        for field, op, value in self.requirements:
            have = fields.get(field, "")
            if (have == value) != (op == EQUALS):
                return False
        return True

    def requires_exact_match(self, field: str) -> str | None:
        for f, op, value in self.requirements:
            if f == field and op == EQUALS:
                return value
        return None

    def transform(self, fn) -> FieldSelector:
        """Rewrite each (field, value) through ``fn``; used to rename legacy fields."""
        out = []
        for field, op, value in self.requirements:
            field, value = fn(field, value)
            out.append((field, op, value))
        return FieldSelector(out)

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``fieldSelector`` query string; raises SelectorError."""
    reqs: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        reqs.append((field, NOT_EQUALS if op == "!=" else EQUALS, unescape_field_value(raw)))
    return FieldSelector(reqs)

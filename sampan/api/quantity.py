"""Kubernetes resource quantities ("500m", "1Gi", "1e3") with exact arithmetic.

Parsing and the canonical string follow apimachinery's resource.Quantity:
values are rounded up to nano precision, binary suffixes (Ki, Mi, ...) are kept
when the value is a whole number of at least 1024, and the canonical form has
no fractional digits and the largest possible suffix ("1000m" -> "1",
"0.5" -> "500m", "1024Mi" -> "1Gi").
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_NUMERIC_ERROR = "unable to parse numeric part of quantity"
_SUFFIX_ERROR = "unable to parse quantity's suffix"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXP = {0: "", **{v: k for k, v in _BINARY_SUFFIXES.items()}}
_SUFFIX_CHARS = set("eEinumkKMGTP")
_NANO = Fraction(1, 10**9)
_MAX_BINARY = Fraction(2**63 - 1)


def _split(text: str) -> tuple[bool, str, str, str]:
    """Split into (positive, integer digits, fraction digits, suffix) like upstream."""
    pos, end = 0, len(text)
    positive = True
    if text[:1] in ("-", "+"):
        positive = text[0] == "+"
        pos = 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit() and text[pos].isascii():
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end:
        if not (text[pos].isdigit() and text[pos].isascii()):
            raise ValueError(_FORMAT_ERROR)
        pos += 1
    return positive, num, denom, text[suffix_start:]


def _interpret_suffix(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) for a suffix."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        body = suffix[1:]
        digits = body[1:] if body[:1] in "+-" else body
        if digits.isdigit() and digits.isascii():
            return 10, int(body), DECIMAL_EXPONENT
    raise ValueError(_SUFFIX_ERROR)


@functools.total_ordering
class Quantity:
    """An exact quantity plus the format it should be printed in."""

    __slots__ = ("amount", "format")

    def __init__(self, amount: Fraction | int = 0, format: str = DECIMAL_SI) -> None:
        self.amount = Fraction(amount)
        self.format = format

    # --- values -------------------------------------------------------------------------

    def _scaled(self, scale: int) -> int:
        # Upstream rounds away from zero when the value has finer precision.
        scaled = self.amount / Fraction(10) ** scale
        whole = math.ceil(abs(scaled))
        return whole if scaled >= 0 else -whole

    def value(self) -> int:
        """Whole units, rounded up."""
        return self._scaled(0)

    def milli_value(self) -> int:
        """Thousandths of a unit, rounded up."""
        return self._scaled(-3)

    def scaled_value(self, scale: int) -> int:
        return self._scaled(scale)

    def is_zero(self) -> bool:
        return self.amount == 0

    # --- arithmetic ---------------------------------------------------------------------

    def _other(self, other: object) -> Quantity | None:
        if isinstance(other, Quantity):
            return other
        if isinstance(other, (int, float, str)):
            return parse_quantity(other)
        return None

    def __add__(self, other: object) -> Quantity:
        o = self._other(other)
        if o is None:
            return NotImplemented
        return Quantity(self.amount + o.amount, o.format if self.is_zero() else self.format)

    __radd__ = __add__

    def __sub__(self, other: object) -> Quantity:
        o = self._other(other)
        if o is None:
            return NotImplemented
        return Quantity(self.amount - o.amount, o.format if self.is_zero() else self.format)

    def __neg__(self) -> Quantity:
        return Quantity(-self.amount, self.format)

    def __eq__(self, other: object) -> bool:
        try:
            o = self._other(other)
        except ValueError:
            return False
        if o is None:
            return NotImplemented
        return self.amount == o.amount

    def __lt__(self, other: object) -> bool:
        o = self._other(other)
        if o is None:
            return NotImplemented
        return self.amount < o.amount

    def __hash__(self) -> int:
        return hash(self.amount)

    # --- formatting ---------------------------------------------------------------------

    def canonical(self) -> str:
        if self.amount == 0:
            return "0"
        fmt = self.format
        if fmt == BINARY_SI:
            # Small or fractional values read better (and stay exact) in decimal.
            if -1024 < self.amount < 1024 or self.amount.denominator != 1:
                fmt = DECIMAL_SI
        if fmt == BINARY_SI:
            return self._binary()
        return self._decimal(fmt)

    def _binary(self) -> str:
        mantissa = abs(self.amount.numerator)
        exp = 0
        while mantissa % 1024 == 0 and exp < 60:
            mantissa //= 1024
            exp += 10
        sign = "-" if self.amount < 0 else ""
        return f"{sign}{mantissa}{_BINARY_BY_EXP[exp]}"

    def _decimal(self, fmt: str) -> str:
        value = abs(self.amount)
        # Find the smallest power of ten that makes the value whole.
        exp = 0
        while value.denominator != 1:
            value *= 10
            exp -= 1
        mantissa = value.numerator
        while mantissa % 10 == 0:
            mantissa //= 10
            exp += 1
        while exp % 3:
            mantissa *= 10
            exp -= 1
        sign = "-" if self.amount < 0 else ""
        if fmt == DECIMAL_SI and exp in _DECIMAL_BY_EXP:
            return f"{sign}{mantissa}{_DECIMAL_BY_EXP[exp]}"
        return f"{sign}{mantissa}" + (f"e{exp}" if exp else "")

    def __str__(self) -> str:
        return self.canonical()

    def __repr__(self) -> str:
        return f"Quantity({self.canonical()!r})"

def parse_quantity(text: str | int | float | Quantity) -> Quantity:
    """Parse a quantity string (or a JSON number); raises ValueError on bad input."""
    if isinstance(text, Quantity):
        return Quantity(text.amount, text.format)
    if isinstance(text, bool):
        raise ValueError(_FORMAT_ERROR)
    if isinstance(text, int):
        text = str(text)
    elif isinstance(text, float):
        if not math.isfinite(text):
            raise ValueError(_FORMAT_ERROR)
        text = repr(text)
    text = text.strip()
    if not text:
        raise ValueError(_FORMAT_ERROR)
    positive, num, denom, suffix = _split(text)
    base, exponent, fmt = _interpret_suffix(suffix)
    try:
        amount = Fraction(int(num + denom), 10 ** len(denom))
    except ValueError:
        raise ValueError(_NUMERIC_ERROR) from None
    if base == 10:
        amount *= Fraction(10) ** exponent
    else:
        amount *= 2**exponent
    # Anything finer than a nano unit rounds up so a tiny request still gets something.
    if amount.denominator != 1 and (amount / _NANO).denominator != 1:
        amount = math.ceil(amount / _NANO) * _NANO
    if fmt == BINARY_SI:
        amount = min(amount, _MAX_BINARY)
        if amount < 1:
            fmt = DECIMAL_SI
    return Quantity(amount if positive else -amount, fmt)


def canonical(text: str | int | float) -> str:
    """Shorthand: the canonical string of a quantity."""
    return parse_quantity(text).canonical()

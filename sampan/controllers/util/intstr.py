"""IntOrString values (``maxSurge: 25%``) resolved against a total, rounding like upstream."""

from __future__ import annotations

import math


class IntOrPercentError(ValueError):
    pass


def scaled_value(value: int | str | None, total: int, round_up: bool, default: int | str = 0) -> int:
    if value is None:
        value = default
    if isinstance(value, bool):
        raise IntOrPercentError(f"invalid value {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        try:
            percent = int(text[:-1])
        except ValueError as exc:
            raise IntOrPercentError(f"invalid value for IntOrString: invalid value {text!r}") from exc
        exact = percent * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    try:
        return int(text)
    except ValueError as exc:
        raise IntOrPercentError(f"invalid value for IntOrString: invalid type: string is not a percentage") from exc

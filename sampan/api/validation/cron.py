"""Standard cron schedule parsing, only to report errors the way CronJob validation does."""

from __future__ import annotations

import re

_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# (min, max, names) for minute, hour, day of month, month, day of week
_FIELDS = [
    (0, 59, {}), (0, 23, {}), (1, 31, {}),
    (1, 12, {m: i + 1 for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}),
    (0, 6, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
]
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def _num(text: str, names: dict[str, int], expr: str) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"failed to parse int from {text}: strconv.Atoi: parsing {text!r}: invalid syntax"
                         .replace("'", '"'))
    return int(text)


def _check_field(expr: str, lo: int, hi: int, names: dict[str, int]) -> None:
    for part in expr.split(","):
        rng, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"step of range should be a positive number: {part}")
        if rng in ("*", "?"):
            continue
        start_s, _, end_s = rng.partition("-")
        start = _num(start_s, names, part)
        end = _num(end_s, names, part) if end_s else start
        if start < lo:
            raise ValueError(f"beginning of range ({start}) below minimum ({lo}): {part}")
        if end > hi:
            raise ValueError(f"end of range ({end}) above maximum ({hi}): {part}")
        if start > end:
            raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {part}")


def schedule_error(schedule: str) -> str | None:
    """None when the schedule parses, else the parser's error text."""
    spec = schedule.strip()
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        spec = spec.split(None, 1)[1] if " " in spec else ""
    if spec.startswith("@"):
        if spec.startswith("@every "):
            dur = spec[len("@every "):].strip()
            return None if _DURATION.match(dur) else f"failed to parse duration {spec}: time: invalid duration {dur!r}".replace("'", '"')
        return None if spec in _DESCRIPTORS else f"unrecognized descriptor: {spec}"
    fields = spec.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    try:
        for expr, (lo, hi, names) in zip(fields, _FIELDS):
            _check_field(expr, lo, hi, names)
    except ValueError as exc:
        return str(exc)
    return None

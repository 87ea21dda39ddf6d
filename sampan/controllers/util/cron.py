"""Standard 5-field cron schedules (minute hour day-of-month month day-of-week), with
ranges, steps, lists, month/day names and the @hourly-style macros, evaluated in a time
zone. Semantics follow the cron library upstream uses: when both day fields are
restricted a day matches either of them, otherwise both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_BOUNDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 7, _DAYS)]
_MINUTE = timedelta(minutes=1)
_SEARCH_YEARS = 5  # "30 2 30 2 *" (February 30th) never fires: give up after this long


def _value(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"invalid value {text!r}")
    return int(text)


def _field(expr: str, lo: int, hi: int, names: dict[str, int]) -> tuple[set[int], bool]:
    """The set of values the field allows, and whether it starts with a star."""
    values: set[int] = set()
    for part in expr.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step_text and (not step_text.isdigit() or step <= 0):
            raise ValueError(f"invalid step in {part!r}")
        if rng in ("*", "?"):
            start, end = lo, hi
        else:
            first, dash, last = rng.partition("-")
            start = _value(first, names)
            end = _value(last, names) if dash else (hi if step_text else start)
        if start < lo or end > hi or start > end:
            raise ValueError(f"{part!r} is out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return values, expr.startswith(("*", "?"))


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month field was a star
    any_weekday: bool

    @classmethod
    def parse(cls, spec: str) -> Schedule:
        text = MACROS.get(spec.strip().lower(), spec.strip())
        if text.startswith("@"):
            raise ValueError(f"unsupported descriptor: {text}")
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
        parsed = [_field(f, lo, hi, names) for f, (lo, hi, names) in zip(fields, _BOUNDS)]
        weekdays = {d % 7 for d in parsed[4][0]}  # 7 is Sunday too
        return cls(
            frozenset(parsed[0][0]), frozenset(parsed[1][0]), frozenset(parsed[2][0]), frozenset(parsed[3][0]),
            frozenset(weekdays), parsed[2][1], parsed[4][1],
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    # Both searches run on wall-clock times (naive datetimes in the schedule's zone).
    def next_wall(self, after: datetime) -> datetime | None:
        t = after.replace(second=0, microsecond=0) + _MINUTE
        stop = t.year + _SEARCH_YEARS
        while t.year <= stop:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += _MINUTE
            else:
                return t
        return None

    def prev_wall(self, at: datetime) -> datetime | None:
        t = at.replace(second=0, microsecond=0)
        stop = t.year - _SEARCH_YEARS
        while t.year >= stop:
            if t.month not in self.months:
                t = t.replace(day=1, hour=0, minute=0) - _MINUTE
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) - _MINUTE
            elif t.hour not in self.hours:
                t = t.replace(minute=0) - _MINUTE
            elif t.minute not in self.minutes:
                t -= _MINUTE
            else:
                return t
        return None

    # Epoch-seconds interface.
    def next_after(self, when: float, tz: tzinfo = UTC) -> float | None:
        """The first scheduled time strictly after ``when``."""
        found = self.next_wall(datetime.fromtimestamp(when, tz).replace(tzinfo=None))
        return found.replace(tzinfo=tz).timestamp() if found is not None else None

    def latest_at_or_before(self, when: float, tz: tzinfo = UTC) -> float | None:
        found = self.prev_wall(datetime.fromtimestamp(when, tz).replace(tzinfo=None))
        return found.replace(tzinfo=tz).timestamp() if found is not None else None


def most_recent(schedule: Schedule, earliest: float, now: float, tz: tzinfo = UTC) -> tuple[float | None, int]:
    """The latest scheduled time in (earliest, now] and how many were missed in that window
    (counted up to 101, the point where upstream gives up counting)."""
    first = schedule.next_after(earliest, tz)
    if first is None or first > now:
        return None, 0
    missed, t = 1, first
    while missed <= 100:
        nxt = schedule.next_after(t, tz)
        if nxt is None or nxt > now:
            return t, missed
        t, missed = nxt, missed + 1
    return schedule.latest_at_or_before(now, tz), missed

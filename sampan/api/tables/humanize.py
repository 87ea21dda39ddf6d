"""Human-readable ages and durations, matching kubectl's output.

The rules follow apimachinery's ``duration.HumanDuration`` and
``duration.ShortHumanDuration`` so ages read the same as on a real cluster.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["human_duration", "short_human_duration", "parse_time", "since", "between"]


def human_duration(delta: timedelta | float) -> str:
    """About 2-3 significant figures: "45s", "3m2s", "5h30m", "2d3h", "400d", "3y2d"."""
    total = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    seconds = int(total)  # truncates toward zero, like Go's int(d.Seconds())
    # A clock skew under two seconds counts as "now".
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def short_human_duration(delta: timedelta | float) -> str:
    """One unit only: "45s", "3m", "5h", "12d", "2y"."""
    total = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    seconds = int(total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{int(total / 3600 / 24 / 365)}y"


def parse_time(value: Any) -> datetime | None:
    """Parses an RFC 3339 timestamp (``Time`` or ``MicroTime``); None if absent or invalid."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # fromisoformat accepts at most microseconds; trim nanosecond fractions.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = ""
        while tail and tail[0].isdigit():
            digits, tail = digits + tail[0], tail[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail}" if digits else head + tail
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def since(timestamp: Any, now: datetime) -> str:
    """Age of a timestamp; ``<unknown>`` when it is missing (a zero time upstream)."""
    parsed = parse_time(timestamp)
    if parsed is None:
        return "<unknown>"
    return human_duration(now - parsed)


def between(start: datetime, end: datetime) -> str:
    return human_duration(end - start)

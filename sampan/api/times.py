"""metav1.Time: RFC 3339 timestamps with second precision, as seconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(when: float) -> str:
    """Seconds since the epoch as metav1.Time (second precision, ``Z``)."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    """A metav1.Time as seconds since the epoch; None when missing or malformed."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

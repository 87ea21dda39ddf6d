"""The cron schedule parser and its next/most-recent time searches."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sampan.controllers.util.cron import Schedule, most_recent


def ts(text: str, tz=UTC) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def iso(when: float, tz=UTC) -> str:
    return datetime.fromtimestamp(when, tz).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("* * * * *", "2024-01-01 10:00:30", "2024-01-01 10:01"),
        ("*/15 * * * *", "2024-01-01 10:01", "2024-01-01 10:15"),
        ("5-10/2 * * * *", "2024-01-01 10:06", "2024-01-01 10:07"),
        ("0 9 * * mon-fri", "2024-01-05 10:00", "2024-01-08 09:00"),  # Friday -> Monday
        ("0 0 1 jan *", "2024-03-01 00:00", "2025-01-01 00:00"),
        ("@hourly", "2024-01-01 10:59", "2024-01-01 11:00"),
        ("@weekly", "2024-01-01 00:00", "2024-01-07 00:00"),
        ("@monthly", "2024-01-31 12:00", "2024-02-01 00:00"),
        ("0 0 29 2 *", "2023-03-01 00:00", "2024-02-29 00:00"),
        # Both day fields restricted: either matches (the 13th or any Friday).
        ("0 0 13 * 5", "2024-09-01 00:00", "2024-09-06 00:00"),
        ("30 4 1,15 * 0,7", "2024-06-02 05:00", "2024-06-09 04:30"),
    ],
)
def test_next_after(spec: str, after: str, expected: str) -> None:
    assert iso(Schedule.parse(spec).next_after(ts(after))) == expected


def test_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    nxt = Schedule.parse("0 9 * * *").next_after(ts("2024-07-01 08:00"), berlin)  # 10:00 in Berlin
    assert iso(nxt, berlin) == "2024-07-02 09:00"
    assert iso(nxt) == "2024-07-02 07:00"


def test_never_firing_schedule_gives_up() -> None:
    assert Schedule.parse("0 0 30 2 *").next_after(ts("2024-01-01 00:00")) is None


@pytest.mark.parametrize("spec", ["* * * *", "60 * * * *", "* * * foo *", "*/0 * * * *", "@reboot", "5-1 * * * *"])
def test_invalid(spec: str) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(spec)


def test_most_recent_and_missed() -> None:
    every5 = Schedule.parse("*/5 * * * *")
    t, missed = most_recent(every5, ts("2024-01-01 10:00"), ts("2024-01-01 10:17"))
    assert iso(t) == "2024-01-01 10:15" and missed == 3
    assert most_recent(every5, ts("2024-01-01 10:00"), ts("2024-01-01 10:04")) == (None, 0)
    t, missed = most_recent(Schedule.parse("* * * * *"), ts("2024-01-01 00:00"), ts("2024-01-02 00:00:10"))
    assert iso(t) == "2024-01-02 00:00" and missed > 100

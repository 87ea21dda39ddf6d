from datetime import datetime, timedelta, timezone

import pytest

from sampan.api.tables.humanize import human_duration, parse_time, short_human_duration, since
from sampan.api.tables.common import quantity as canonical


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (182, "3m2s"),
    (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 5 * 60, "3h5m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (51 * 3600, "2d3h"), (8 * 86400, "8d"),
    (729 * 86400, "729d"), (730 * 86400, "2y"), (732 * 86400, "2y2d"), (8 * 365 * 86400, "8y"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text
    assert human_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (-2, "<invalid>"), (-1, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"),
    (86399, "23h"), (86400, "1d"), (364 * 86400, "364d"), (365 * 86400, "1y"), (800 * 86400, "2y"),
])
def test_short_human_duration(seconds: int, text: str) -> None:
    assert short_human_duration(seconds) == text


def test_parse_and_since() -> None:
    now = datetime(2025, 1, 10, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_time("2025-01-10T11:59:00Z") == datetime(2025, 1, 10, 11, 59, tzinfo=timezone.utc)
    assert parse_time("2025-01-10T11:59:00.123456789Z") is not None  # nanosecond MicroTime
    assert parse_time("garbage") is None
    assert since("2025-01-10T11:55:00Z", now) == "5m"
    assert since(None, now) == "<unknown>"


@pytest.mark.parametrize(("text", "expected"), [
    ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("512", "512"), ("1000", "1k"),
    ("1500", "1500"), ("0.5", "500m"), ("1.5Gi", "1536Mi"), ("100m", "100m"), ("2000m", "2"),
    ("10G", "10G"), ("0", "0"), ("1e3", "1e3"), ("5Ki", "5Ki"), (8, "8"),
])
def test_quantity_canonical(text: str, expected: str) -> None:
    assert canonical(text) == expected


def test_quantity_falls_back_to_text() -> None:
    assert canonical("lots") == "lots"
    assert canonical(None) == "0"

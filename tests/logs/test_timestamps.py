"""Timestamp normalization: RFC 3339 UTC with Z, the runtime's precision kept."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from kk_logs.parsing import normalize_timestamp
from kk_logs.parsing.timestamps import CANONICAL_UTC_PATTERN, ReadTimeFormatter


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Already canonical: returned unchanged, every digit kept.
        ("2026-11-26T10:00:00.123456789Z", "2026-11-26T10:00:00.123456789Z"),
        # Precision variants: Go's RFC3339Nano drops trailing zeros; none are added.
        ("2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z"),
        ("2026-11-26T10:00:00.1Z", "2026-11-26T10:00:00.1Z"),
        ("2026-11-26T10:00:00.123456Z", "2026-11-26T10:00:00.123456Z"),
        ("2026-11-26T10:00:00.000000000Z", "2026-11-26T10:00:00.000000000Z"),
        # More than nanoseconds: cut, never rounded into the next second.
        ("2026-11-26T10:00:59.9999999999Z", "2026-11-26T10:00:59.999999999Z"),
        # Offsets are converted to UTC; the fraction does not go through datetime.
        ("2026-11-26T11:00:00.123456789+01:00", "2026-11-26T10:00:00.123456789Z"),
        ("2026-11-26T04:30:00.000000001-05:30", "2026-11-26T10:00:00.000000001Z"),
        ("2026-01-01T00:30:00.5+01:00", "2025-12-31T23:30:00.5Z"),
        ("2026-11-26T10:00:00+00:00", "2026-11-26T10:00:00Z"),
        ("2026-11-26T10:00:00.999999999-00:00", "2026-11-26T10:00:00.999999999Z"),
        ("2024-02-29T23:00:00+0100", "2024-02-29T22:00:00Z"),
        # Lower case and a space separator (RFC 3339 section 5.6 note) are canonicalised.
        ("2026-11-26t10:00:00.5z", "2026-11-26T10:00:00.5Z"),
        ("2026-11-26 10:00:00.5Z", "2026-11-26T10:00:00.5Z"),
        # A leap second survives the offset shift.
        ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:60.5Z"),
        ("2017-01-01T00:59:60.5+01:00", "2016-12-31T23:59:60.5Z"),
    ],
)
def test_timestamps_become_utc_z_with_all_their_digits(raw: str, expected: str) -> None:
    """Each runtime form normalizes to RFC 3339 UTC Z, precision unchanged."""
    assert normalize_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1764151200",  # an epoch number is never a timestamp here
        "1764151200.123",
        "2026-11-26",
        "2026-11-26T10:00:00",  # no zone: ambiguous
        "2026-11-26T10:00:00.Z",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",  # not a leap year
        "2026-04-31T00:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T10:61:00Z",
        "2026-11-26T10:00:00+24:00",
        "0001-01-01T00:00:00+01:00",  # shifts before year 1
        # No year 0000: the UTC fast paths once returned it, the receiver refused the record
        # and the shipper re-sent its whole batch, halving, until it was dead-lettered.
        "0000-01-01T00:00:00Z",
        "0000-06-15T12:00:00.5Z",
        "0000-01-01 00:00:00z",
        " 2026-11-26T10:00:00Z",
        "2026-11-26T10:00:00Z ",
        "\uff12\uff10\uff12\uff16-11-26T10:00:00Z",  # fullwidth digits are not ASCII digits
    ],
)
def test_bad_timestamps_are_rejected(raw: str) -> None:
    """Anything that is not a valid RFC 3339 date-time gives None (the caller flags it)."""
    assert normalize_timestamp(raw) is None


@pytest.mark.parametrize("year", [2024, 2026, 2100, 2000, 0])
def test_the_canonical_pattern_takes_only_what_normalization_keeps_as_it_is(year: int) -> None:
    """`CANONICAL_UTC_PATTERN` (the parser's one-regex path) accepts a date only when
    `normalize_timestamp` returns it unchanged, and every such date but February 29."""
    canonical = re.compile(CANONICAL_UTC_PATTERN, re.ASCII)
    for month in range(0, 14):
        for day in range(0, 33):
            raw = f"{year:04d}-{month:02d}-{day:02d}T23:59:59.123456789Z"
            exists = normalize_timestamp(raw) == raw
            if canonical.fullmatch(raw):
                assert exists, raw
            else:
                assert not exists or (month, day) == (2, 29), raw


@pytest.mark.parametrize(
    "now",
    [
        0.0,
        1_800_000_000.0,
        1_800_000_000.9999996,  # rounds up into the next second
        1_800_000_000.0000004,
        1_800_526_670.4452975,  # where `round(now * 10**6)` and datetime disagree
        1_799_999_999.9999999,
        -0.5,
        -1.0000001,
    ],
)
def test_the_read_time_is_what_datetime_writes(now: float) -> None:
    """`ReadTimeFormatter` keeps the date and time of day per second and adds the
    microseconds; the text is the one `datetime` formats, also across a second's end."""
    expected = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    formatter = ReadTimeFormatter()
    assert formatter(now) == expected
    formatter(now - 1.25)  # another second in between
    assert formatter(now) == expected
    assert formatter(now) == expected  # from the kept second

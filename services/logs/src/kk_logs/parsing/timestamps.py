"""Container runtime timestamps -> RFC 3339 UTC with ``Z``, keeping every digit of the fraction.

The receiver wants RFC 3339 in UTC with a ``Z`` suffix and the runtime's own precision
(receiver-api.md). Runtimes write:

* containerd / CRI-O (CRI log format): Go's ``time.RFC3339Nano``, normally UTC
  (``2026-11-26T10:00:00.123456789Z``), but an offset (``+01:00``) is legal and some
  runtimes configured with a local zone write one. Go's RFC3339Nano drops trailing
  zeros, so the fraction has 0 to 9 digits.
* docker json-file: ``time`` in UTC with 9 digits (``...Z``).

The fraction is carried as text and never goes through `datetime` (which stops at
microseconds), so nanoseconds are never lost. Only the whole-second part is shifted to
UTC when an offset is present. The common case (already canonical UTC with ``Z`` on a
date that exists in every year) costs one ``fullmatch`` of a pattern without groups and
returns the ``str`` it was given. `CANONICAL_UTC_PATTERN` is that pattern, for callers
that check many timestamps in one regex call (`kk_logs.parsing.cri`).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

__all__ = ["CANONICAL_UTC_PATTERN", "ReadTimeFormatter", "normalize_timestamp"]

# Anchored, no nested quantifiers: linear time on any input. Ranges are checked in the
# pattern so that the UTC fast path needs no int() calls; day-of-month beyond 28 is
# checked separately (February, 30-day months).
_RFC3339 = re.compile(
    r"(?!0000)(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]"
    r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)"
    r"(?:\.(\d+))?"
    r"(?:([Zz])|([+-])([01]\d|2[0-3]):?([0-5]\d))",
    re.ASCII,  # \d must not match other scripts' digits
)
# Dates that exist in every year: days 1-28 of any month, 29 and 30 of every month but
# February, 31 of the seven long months. February 29 needs the year: `_RFC3339` decides it.
# Year 0000 is no year (datetime's range and the receiver's start at 0001; RFC 3339's
# syntax alone would allow it): a line stamped so gets the read time and `bad_timestamp`.
_DATE_OF_EVERY_YEAR = (
    r"(?!0000)\d{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)"
)
CANONICAL_UTC_PATTERN = (
    _DATE_OF_EVERY_YEAR + r"T(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d{1,9})?Z"
)
"""A timestamp that `normalize_timestamp` returns unchanged: canonical RFC 3339 UTC with at
most 9 fraction digits, on a date of every year. No groups; compile it with ``re.ASCII``."""
# Without groups: matching is what costs.
_CANONICAL_UTC = re.compile(CANONICAL_UTC_PATTERN, re.ASCII)
_MAX_FRACTION_DIGITS = 9
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def normalize_timestamp(raw: str) -> str | None:
    """Return ``raw`` as RFC 3339 UTC with ``Z``, or None when it is not a valid timestamp.

    The fraction keeps the digits the runtime wrote (up to 9; extra digits beyond
    nanoseconds are cut, never rounded, so a value never moves into the next second).
    Lower-case ``t``/``z`` and a space separator are accepted and written canonically.

    >>> normalize_timestamp("2026-11-26T11:00:00.123456789+01:00")
    '2026-11-26T10:00:00.123456789Z'
    """
    if _CANONICAL_UTC.fullmatch(raw) is not None:
        return raw  # the hot path for containerd and docker
    m = _RFC3339.fullmatch(raw)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = m.groups()
    if day > "28":
        y, mo, d = int(year), int(month), int(day)
        if d > _DAYS_IN_MONTH[mo] or (mo == 2 and d == 29 and not _is_leap(y)):
            return None
    frac = ""
    if fraction is not None:
        frac = "." + fraction[:_MAX_FRACTION_DIGITS]
    if zulu is not None or (off_h == "00" and off_m == "00"):
        if zulu == "Z" and raw[10] == "T" and (fraction is None or len(fraction) <= 9):
            return raw  # already canonical: the hot path for containerd and docker
        return f"{year}-{month}-{day}T{hour}:{minute}:{second}{frac}Z"
    # An offset: shift the whole seconds with datetime, then re-attach the fraction
    # text untouched. A leap second (:60) is shifted as :59 and written back as :60.
    leap = second == "60"
    delta = timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), 59 if leap else int(second)
        )
        utc = local - delta if sign == "+" else local + delta
    except (ValueError, OverflowError):  # year 0000, or shifted out of 0001..9999
        return None
    sec = "60" if leap else f"{utc.second:02d}"
    date = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
    return f"{date}T{utc.hour:02d}:{utc.minute:02d}:{sec}{frac}Z"


class ReadTimeFormatter:
    """Wall-clock seconds -> RFC 3339 UTC with microseconds (``2026-12-02T10:00:00.123456Z``).

    The read time labels every chunk's records, so it is formatted once per chunk: on a
    node of slowly written files that is once per line, and ``strftime`` was the biggest
    single cost of such a line (~3 µs). The date and time of day are formatted once per
    second and kept; each call adds only the microseconds. The result is what
    ``datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")`` gives, rounded
    the same way (the fraction's microseconds to the nearest, halves to even).
    """

    __slots__ = ("_head", "_second")

    def __init__(self) -> None:
        self._second: int | None = None
        self._head = ""

    def __call__(self, now: float) -> str:
        fraction, whole = math.modf(now)
        second, micros = int(whole), round(fraction * 1_000_000)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        elif micros < 0:  # before 1970
            second, micros = second - 1, micros + 1_000_000
        if second != self._second:
            self._head = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._head}.{micros:06d}Z"

"""Durations and sizes: the exact grammar, the units, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kk_common.config import UnitError, format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("30s", 30.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h2m3s4ms", 3723.004),
        ("1.5s", 1.5),
        (" 5s ", 5.0),
        ("0s", 0.0),
    ],
)
def test_valid_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_bare_number_is_rejected_with_a_hint_to_add_a_unit() -> None:
    with pytest.raises(UnitError) as caught:
        parse_duration("30")
    assert caught.value.hint == "write e.g. '30s'"


@pytest.mark.parametrize(
    "text", ["", "s", "5", "5 s", "5sec", "5S", "1s1m", "1m1m", "-5s", "5s junk", "1d", "ms5"]
)
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(UnitError):
        parse_duration(text)


@given(
    hours=st.integers(0, 48),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
    millis=st.integers(0, 999),
)
def test_any_ordered_combination_of_units_adds_up(
    hours: int, minutes: int, seconds: int, millis: int
) -> None:
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")]
    text = "".join(f"{count}{unit}" for count, unit in parts if count)
    expected = hours * 3600 + minutes * 60 + seconds + millis / 1000
    if not text:
        return
    assert parse_duration(text) == pytest.approx(expected)


@given(st.integers(1, 10**9))
def test_format_duration_round_trips_whole_milliseconds(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.5, "500ms"), (5.0, "5s"), (90.0, "1m30s"), (3600.0, "1h")]
)
def test_format_duration_uses_the_largest_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1B", 1),
        ("512KB", 512_000),
        ("512kb", 512_000),
        ("512K", 512_000),
        ("512KiB", 512 * 1024),
        ("512Ki", 512 * 1024),
        ("32MB", 32_000_000),
        ("32M", 32_000_000),
        ("32MiB", 32 * 1024**2),
        ("32Mi", 32 * 1024**2),
        ("1GB", 10**9),
        ("1GiB", 1024**3),
        ("1.5GiB", 3 * 512 * 1024**2),
        ("2 TB", 2 * 10**12),
        ("2TiB", 2 * 1024**4),
    ],
)
def test_kb_mb_gb_are_decimal_and_kib_mib_gib_are_binary(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bare_size_is_rejected_with_a_hint() -> None:
    with pytest.raises(UnitError) as caught:
        parse_size("1024")
    assert caught.value.hint is not None
    assert "'1024B'" in caught.value.hint


@pytest.mark.parametrize("text", ["", "MB", "32XB", "32 M B", "-1MB", "0.3B", "1.0000001KB"])
def test_malformed_sizes_are_rejected(text: str) -> None:
    with pytest.raises(UnitError):
        parse_size(text)


def test_the_size_error_says_which_base_is_used() -> None:
    with pytest.raises(UnitError) as caught:
        parse_size("32XB")
    assert "KB, MB, GB = 1000-based; KiB, MiB, GiB = 1024-based" in str(caught.value)


@given(
    st.integers(1, 4096),
    st.sampled_from([("B", 1), ("KB", 1000), ("KiB", 1024), ("MiB", 1024**2), ("GB", 10**9)]),
)
def test_size_parsing_multiplies_by_the_unit(count: int, unit: tuple[str, int]) -> None:
    assert parse_size(f"{count}{unit[0]}") == count * unit[1]


@given(st.integers(1, 2**50))
def test_format_size_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (1, "1B"),
        (1500, "1500B"),
        (1536, "1536B"),
        (32_000_000, "32MB"),
        (32 * 1024**2, "32MiB"),
        (1024**3, "1GiB"),
    ],
)
def test_format_size_uses_binary_units(size: int, text: str) -> None:
    assert format_size(size) == text

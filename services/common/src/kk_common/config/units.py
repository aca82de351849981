"""Durations and sizes as operators write them, parsed once into seconds and bytes.

Durations: a sequence of ``<number><unit>`` with units ``h``, ``m``, ``s`` and ``ms``,
largest first and each at most once, like Go's ``time.ParseDuration`` but stricter
(``500ms``, ``5s``, ``1m30s``, ``1.5h``). A bare number is rejected: ``30`` could mean
seconds or milliseconds, and guessing wrong is a silent 1000x error.

Sizes: ``<number><unit>``, case-insensitive. **KB, MB, GB and TB (and K, M, G, T) are
decimal**, powers of 1000, as SI says and as Fluent Bit documents its own unit sizes
("k, K, KB, kb: 1,000 bytes") and Kubernetes reads ``M``. **KiB, MiB, GiB and TiB (and
Ki, Mi, Gi, Ti, as in Kubernetes quantities) are binary**, powers of 1024. So ``32MB`` is
32,000,000 bytes and ``32MiB`` is 33,554,432. A bare number is rejected for the same
reason as for durations: ``32`` was probably not meant as 32 bytes.

The parsers raise :class:`UnitError` whose message says what was expected; callers add
what they got (see :mod:`kk_common.config.messages`).
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = [
    "SIZE_UNITS",
    "UnitError",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]


class UnitError(ValueError):
    """A duration or size could not be parsed.

    ``expected`` says what a valid value looks like; ``hint`` (optional) says how to fix
    this one. Neither repeats the input, so the caller decides how to show it.
    """

    def __init__(self, expected: str, hint: str | None = None) -> None:
        self.expected = expected
        self.hint = hint
        super().__init__(expected if hint is None else f"{expected}; {hint}")


# -- durations ---------------------------------------------------------------------------

DURATION_EXPECTED = "expected a duration such as '500ms', '5s', '1m', '1h' or '1m30s'"
_DURATION_UNITS: dict[str, Decimal] = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_UNIT_ORDER = list(_DURATION_UNITS)
# "ms" must be tried before "m" and "s" so that "500ms" is not read as 500m + "s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str) -> float:
    """Parse ``'1m30s'`` into ``90.0`` seconds; raise :class:`UnitError` if malformed."""
    compact = text.strip()
    if _BARE_NUMBER.fullmatch(compact):
        raise UnitError(
            "expected a duration with a unit (ms, s, m or h)", f"write e.g. '{compact}s'"
        )
    total = Decimal(0)
    position = 0
    previous_rank = -1
    for match in _DURATION_PART.finditer(compact):
        rank = _UNIT_ORDER.index(match.group(2))
        if match.start() != position or rank <= previous_rank:
            break
        total += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
        previous_rank = rank
    if position == 0 or position != len(compact):
        raise UnitError(
            DURATION_EXPECTED, "units are h, m, s and ms, largest first, each at most once"
        )
    return float(total)


def format_duration(seconds: float) -> str:
    """Render seconds the way :func:`parse_duration` reads them (``90.0`` -> ``'1m30s'``)."""
    milliseconds = round(seconds * 1000)
    if milliseconds <= 0 or abs(milliseconds - seconds * 1000) > 1e-6:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# -- sizes --------------------------------------------------------------------------------

_DECIMAL = {"K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}  # SI, Fluent Bit, Kubernetes M
_BINARY = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}  # IEC KiB..., Kubernetes Mi

SIZE_UNITS: dict[str, int] = {
    "b": 1,
    **{prefix.lower(): factor for prefix, factor in _DECIMAL.items()},
    **{f"{prefix}b".lower(): factor for prefix, factor in _DECIMAL.items()},
    **{f"{prefix}i".lower(): factor for prefix, factor in _BINARY.items()},
    **{f"{prefix}ib".lower(): factor for prefix, factor in _BINARY.items()},
}
"""Every accepted size unit (lower-cased: matching ignores case) and its factor in bytes."""

SIZE_EXPECTED = (
    "expected a size such as '512KB', '32MB' or '1GiB' "
    "(KB, MB, GB = 1000-based; KiB, MiB, GiB = 1024-based)"
)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)")


def parse_size(text: str) -> int:
    """Parse ``'32MB'`` into ``32000000`` bytes (``'32MiB'``: ``33554432``).

    Raises :class:`UnitError` if malformed.
    """
    compact = text.strip()
    if _BARE_NUMBER.fullmatch(compact):
        raise UnitError(
            "expected a size with a unit (B, KB, MB, GB = 1000-based; KiB, MiB, GiB = 1024-based)",
            f"write '{compact}B' for bytes or e.g. '32MB'",
        )
    match = _SIZE.fullmatch(compact)
    if match is None or match.group(2).lower() not in SIZE_UNITS:
        raise UnitError(SIZE_EXPECTED)
    size = Decimal(match.group(1)) * SIZE_UNITS[match.group(2).lower()]
    if size != size.to_integral_value():
        raise UnitError(SIZE_EXPECTED, "the size must come to a whole number of bytes")
    return int(size)


# Largest factor first, so 33554432 is "32MiB" rather than "32768KiB".
_DISPLAY_UNITS = sorted(
    [(factor, f"{prefix}B") for prefix, factor in _DECIMAL.items()]
    + [(factor, f"{prefix}iB") for prefix, factor in _BINARY.items()],
    reverse=True,
)


def format_size(size_bytes: int) -> str:
    """Render bytes with the largest unit that divides them exactly.

    ``32000000`` -> ``'32MB'``, ``33554432`` -> ``'32MiB'``, ``1500`` -> ``'1500B'``.
    """
    for factor, unit in _DISPLAY_UNITS:
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes}B"

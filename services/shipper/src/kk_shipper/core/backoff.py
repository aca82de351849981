"""Retry timing: full-jitter exponential backoff, ``Retry-After``, and output pauses.

Full jitter (a uniform wait in ``[0, min(cap, base * 2**n)]``) spreads the retries of many
agents that failed together, instead of having them return in lock-step. The randomness is
an injected `random.Random`, so tests are deterministic.
"""

from __future__ import annotations

import random
from datetime import UTC
from email.utils import parsedate_to_datetime

from .settings import RetrySettings

__all__ = [
    "backoff_ceiling",
    "full_jitter_delay",
    "parse_retry_after",
    "pause_duration",
    "retry_delay",
]

_MAX_EXPONENT = 64
"""2**64 times any sane base is past every cap; bounding it keeps the float finite."""


def backoff_ceiling(retry_index: int, *, base_s: float, cap_s: float) -> float:
    """The longest wait before retry number ``retry_index`` (0 for the first retry)."""
    exponent = min(max(retry_index, 0), _MAX_EXPONENT)
    return min(cap_s, base_s * 2.0**exponent)


def full_jitter_delay(
    retry_index: int, *, base_s: float, cap_s: float, rng: random.Random
) -> float:
    """A wait drawn uniformly from ``[0, backoff_ceiling(retry_index)]``."""
    ceiling = backoff_ceiling(retry_index, base_s=base_s, cap_s=cap_s)
    return min(ceiling, max(0.0, rng.uniform(0.0, ceiling)))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from ``now`` (unix time) per a ``Retry-After`` value, or None.

    RFC 9110 section 10.2.3: either ``delay-seconds`` (digits) or an HTTP-date. A date in the
    past means "now" (0). Anything unparseable is ignored (None): the backoff applies.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 section 5.6.7: HTTP-dates are always UTC ("GMT"); "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retry_delay(
    retry_index: int, retry_after_s: float | None, settings: RetrySettings, rng: random.Random
) -> float:
    """The wait before a retry: the receiver's ``Retry-After`` wins over our backoff, but is
    capped by ``max_retry_after_s`` so a receiver cannot park an output for days."""
    if retry_after_s is not None:
        return min(max(0.0, retry_after_s), settings.max_retry_after_s)
    return full_jitter_delay(
        retry_index, base_s=settings.initial_backoff_s, cap_s=settings.max_backoff_s, rng=rng
    )


def pause_duration(streak: int, settings: RetrySettings) -> float:
    """How long an output pauses after its ``streak``-th consecutive 401/403 or mismatch.

    No jitter here: the point is a long, predictable quiet period (no retry storm), not spreading
    load; it doubles from ``pause_s`` up to ``max_pause_s``.
    """
    return backoff_ceiling(streak - 1, base_s=settings.pause_s, cap_s=settings.max_pause_s)

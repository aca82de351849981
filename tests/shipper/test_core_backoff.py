"""Full-jitter exponential backoff, Retry-After precedence and caps, output pauses."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kk_shipper.core import RetrySettings
from kk_shipper.core.backoff import (
    backoff_ceiling,
    full_jitter_delay,
    pause_duration,
    retry_delay,
)


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    ceilings = [backoff_ceiling(n, base_s=1.0, cap_s=60.0) for n in range(8)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_full_jitter_is_deterministic_with_a_seeded_random_and_spreads_over_the_range() -> None:
    first = [full_jitter_delay(5, base_s=1.0, cap_s=60.0, rng=random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1  # same seed, same delay
    rng = random.Random(7)
    delays = [full_jitter_delay(5, base_s=1.0, cap_s=60.0, rng=rng) for _ in range(500)]
    assert all(0.0 <= d <= 32.0 for d in delays)
    # Full jitter, not "half" or "equal" jitter: waits near zero and near the ceiling occur.
    assert min(delays) < 2.0
    assert max(delays) > 30.0


@given(
    retry_index=st.integers(min_value=0, max_value=10_000),
    base_s=st.floats(min_value=0.001, max_value=100.0),
    cap_s=st.floats(min_value=0.001, max_value=10_000.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_delay_is_always_within_zero_and_the_capped_ceiling(
    retry_index: int, base_s: float, cap_s: float, seed: int
) -> None:
    delay = full_jitter_delay(retry_index, base_s=base_s, cap_s=cap_s, rng=random.Random(seed))
    assert 0.0 <= delay <= min(cap_s, base_s * 2.0 ** min(retry_index, 64))


def test_retry_after_wins_over_the_backoff_but_is_capped() -> None:
    settings = RetrySettings(max_backoff_s=60.0, max_retry_after_s=300.0)
    rng = random.Random(1)
    assert retry_delay(0, 120.0, settings, rng) == 120.0  # above the backoff cap: still honoured
    assert retry_delay(0, 0.0, settings, rng) == 0.0
    assert retry_delay(0, 86_400.0, settings, rng) == 300.0
    assert 0.0 <= retry_delay(3, None, settings, rng) <= 8.0


def test_pauses_double_up_to_their_cap_without_jitter() -> None:
    settings = RetrySettings(pause_s=60.0, max_pause_s=300.0)
    assert [pause_duration(n, settings) for n in range(1, 6)] == [60.0, 120.0, 240.0, 300.0, 300.0]

"""Coverage answers "stored before?" for a whole batch's positions at once."""

from __future__ import annotations

from kk_shipper.storage.coverage import Coverage

LOGS_A, LOGS_B, LOGS_NEW = ("logs", "a"), ("logs", "b"), ("logs", "new")


def test_a_batch_finds_exactly_the_positions_its_sources_stored_before() -> None:
    coverage = Coverage(window_s=60, max_sources=10)
    # Source a stored [0, 100) and [200, 300) (a line between is still being written);
    # source b stored [0, 50); source "new" nothing yet.
    coverage.install(coverage.merged([(LOGS_A, 0, 100), (LOGS_A, 200, 300), (LOGS_B, 0, 50)]), 1.0)
    keys = [LOGS_A, LOGS_B, LOGS_NEW]
    positions = [
        (0, 0),  # a, stored                -> covered
        (0, 150),  # a, the gap             -> new
        (0, 299),  # a, last stored byte    -> covered
        (0, 300),  # a, past what it stored -> new
        (1, 49),  # b, stored               -> covered
        (1, 50),  # b, past                 -> new
        (2, 0),  # a source with no ranges  -> new
    ]
    assert coverage.covered(keys, positions) == [0, 2, 4]
    assert coverage.covered(keys, positions) == [
        index for index, (source, at) in enumerate(positions) if coverage.covers(keys[source], at)
    ]


def test_nothing_is_covered_before_anything_was_stored() -> None:
    coverage = Coverage(window_s=60, max_sources=10)
    assert coverage.covered([LOGS_A], [(0, 0), (0, 10)]) == []
    assert coverage.covered([], []) == []

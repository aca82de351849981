"""The scrape grid: jittered start, fixed interval, no double scrapes, no catch-up bursts."""

from __future__ import annotations

from kk_metrics.schedule import ScrapeSchedule


def test_the_first_scrape_waits_the_jitter_then_follows_the_grid() -> None:
    schedule = ScrapeSchedule(["a", "b"], interval_s=30, start=100.0, jitter=0.25)
    assert schedule.next_deadline() == 107.5
    assert schedule.due(107.4) == []
    assert schedule.due(107.5) == ["a", "b"]
    schedule.finished("a")
    schedule.finished("b")
    assert schedule.next_deadline() == 137.5
    # A late wake-up does not move the grid.
    assert schedule.due(139.0) == ["a", "b"]
    assert schedule.next_deadline() == 167.5


def test_a_source_still_running_is_not_started_twice() -> None:
    schedule = ScrapeSchedule(["slow", "fast"], interval_s=10, start=0.0, jitter=0.0)
    assert schedule.due(0.0) == ["slow", "fast"]
    schedule.finished("fast")
    assert schedule.due(10.0) == ["fast"]
    assert schedule.sources["slow"].overruns == 1
    schedule.finished("slow")
    assert "slow" in schedule.due(20.0)


def test_turns_missed_while_the_process_was_stopped_are_skipped_not_caught_up() -> None:
    schedule = ScrapeSchedule(["a"], interval_s=10, start=0.0, jitter=0.0)
    schedule.due(0.0)
    schedule.finished("a")
    assert schedule.due(45.0) == ["a"]  # one scrape, not four
    assert schedule.sources["a"].missed == 3
    assert schedule.next_deadline() == 50.0


def test_a_source_that_appears_joins_the_grid_and_one_that_goes_leaves_it() -> None:
    schedule = ScrapeSchedule([], interval_s=10, start=0.0, jitter=0.5)
    assert schedule.next_deadline() == float("inf")  # nothing to scrape yet
    schedule.add("pod/shop/web-1", now=2.0)  # before the grid starts: its first point
    schedule.add("pod/shop/web-2", now=17.0)  # later: the grid's next point
    assert schedule.sources["pod/shop/web-1"].next_due == 5.0
    assert schedule.sources["pod/shop/web-2"].next_due == 25.0
    assert schedule.due(25.0) == ["pod/shop/web-1", "pod/shop/web-2"]
    schedule.remove("pod/shop/web-2")
    schedule.finished("pod/shop/web-2")  # its scrape ends after it went: nothing breaks
    schedule.finished("pod/shop/web-1")
    assert schedule.due(35.0) == ["pod/shop/web-1"]

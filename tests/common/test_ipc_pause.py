"""A producer's reading pause is worth a word only when it lasts."""

from __future__ import annotations

from kk_common.ipc import PauseEnded, PauseStarted, ReadingPause


def test_a_full_window_that_clears_quickly_is_routine_and_not_reported() -> None:
    pause = ReadingPause(report_after_s=1.0)
    assert pause.observe(False, 10.0) is None
    assert pause.observe(False, 10.9) is None
    assert pause.observe(True, 10.95) is None
    assert (pause.pauses, pause.paused_for(11.0)) == (0, 0.0)


def test_a_lasting_pause_is_reported_once_when_it_starts_and_once_when_it_ends() -> None:
    pause = ReadingPause(report_after_s=1.0)
    assert pause.observe(False, 10.0) is None
    assert pause.next_report_at() == 11.0
    assert pause.observe(False, 11.0) == PauseStarted(since=10.0)
    assert pause.observe(False, 12.0) is None
    assert pause.next_report_at() is None
    assert pause.paused_for(15.0) == 5.0
    assert pause.observe(True, 16.5) == PauseEnded(paused_s=6.5)
    assert (pause.pauses, pause.paused_seconds, pause.paused_for(17.0)) == (1, 6.5, 0.0)


def test_each_lasting_pause_counts() -> None:
    pause = ReadingPause(report_after_s=0.5)
    for start in (0.0, 10.0):
        pause.observe(False, start)
        assert isinstance(pause.observe(False, start + 1), PauseStarted)
        assert pause.observe(True, start + 2) == PauseEnded(paused_s=2.0)
    assert (pause.pauses, pause.paused_seconds) == (2, 4.0)

"""The look mark in the offset store: written with the registrations it covers, never
loaded as a file, kept by prune, and invisible to an older reader's idea of a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kk_logs.offsets import LOOK_MARK, OffsetStore


def test_the_look_mark_is_written_with_the_files_it_covers(tmp_path: Path) -> None:
    with OffsetStore(tmp_path / "offsets.db") as store:
        assert store.last_look() is None
        store.commit({"1.2.abc": (0, "/p/0.log")}, 100.0, looked_at=99.5)
        assert store.last_look() == 99.5
        assert set(store.load()) == {"1.2.abc"}  # the mark is not a file
        store.commit({}, 101.0, looked_at=100.5)  # the mark alone
    with OffsetStore(tmp_path / "offsets.db") as reopened:
        assert reopened.last_look() == 100.5
        assert reopened.prune(older_than=0.0, now=1000.0) == ["1.2.abc"]
        assert reopened.last_look() == 100.5


def test_no_file_can_take_the_reserved_identity(tmp_path: Path) -> None:
    with OffsetStore(tmp_path / "offsets.db") as store, pytest.raises(ValueError):
        store.commit({LOOK_MARK: (0, "")}, 1.0)

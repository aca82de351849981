"""OffsetStore stories: offsets survive reopening, never go backwards unless reset, old files
are forgotten, and a file the store cannot read is refused with an error naming it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from kk_logs.offsets import (
    CURRENT_VERSION,
    CheckpointTracker,
    CommitResult,
    OffsetCorruptError,
    OffsetFormatError,
    OffsetStore,
    OffsetStoreError,
    StoredOffset,
)

T0 = 1_700_000_000.0
DAY = 86_400.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "logs" / "offsets.db"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_offsets_survive_closing_and_reopening(db: Path) -> None:
    with OffsetStore(db) as store:
        assert store.load() == {}
        store.commit({"1:10:abc": (4096, "/var/log/pods/a/0.log")}, T0)
        store.commit({"1:11:def": (17, "/var/log/pods/b/0.log")}, T0 + 5)

    with OffsetStore(db) as store:
        assert store.load() == {
            "1:10:abc": StoredOffset(4096, "/var/log/pods/a/0.log", T0),
            "1:11:def": StoredOffset(17, "/var/log/pods/b/0.log", T0 + 5),
        }


def test_commit_updates_offset_path_and_time(db: Path) -> None:
    with OffsetStore(db) as store:
        store.commit({"f": (10, "/logs/0.log")}, T0)
        result = store.commit({"f": (20, "/logs/0.log.20240101")}, T0 + 1)  # renamed by rotation
        assert result == CommitResult(written=1, kept_ahead=())
        assert store.load() == {"f": StoredOffset(20, "/logs/0.log.20240101", T0 + 1)}


def test_offset_never_moves_backwards_but_path_and_time_still_update(db: Path) -> None:
    with OffsetStore(db) as store:
        store.commit({"f": (500, "/a"), "g": (10, "/g")}, T0)
        result = store.commit({"f": (300, "/b"), "g": (11, "/g")}, T0 + 1)
        assert result == CommitResult(written=2, kept_ahead=("f",))
        assert store.load() == {
            "f": StoredOffset(500, "/b", T0 + 1),
            "g": StoredOffset(11, "/g", T0 + 1),
        }


def test_reset_moves_offsets_backwards_for_all_or_for_named_files(db: Path) -> None:
    """copytruncate: the file was truncated in place and is read again from the start."""
    with OffsetStore(db) as store:
        store.commit({"f": (500, "/f"), "g": (500, "/g"), "h": (500, "/h")}, T0)
        store.commit({"f": (3, "/f"), "g": (3, "/g")}, T0 + 1, reset={"f"})
        assert {k: v.offset for k, v in store.load().items()} == {"f": 3, "g": 500, "h": 500}
        store.commit({"h": (0, "/h")}, T0 + 2, reset=True)
        assert store.load()["h"].offset == 0


def test_tracker_rewind_flows_into_a_reset_commit(db: Path) -> None:
    """The wiring the app uses: committable + rewound -> commit -> mark_committed."""
    with OffsetStore(db) as store:
        store.commit({"f": (5000, "/f")}, T0)
        tracker = CheckpointTracker({k: v.offset for k, v in store.load().items()})
        tracker.emitted("b1", {"f": 40})  # truncated while the agent was down
        tracker.acknowledged("b1")
        offsets = tracker.committable()
        result = store.commit(
            {f: (o, "/f") for f, o in offsets.items()}, T0 + 1, reset=tracker.rewound()
        )
        tracker.mark_committed(offsets)
        assert result.kept_ahead == ()
        assert store.load()["f"].offset == 40


def test_bad_offsets_are_refused_and_nothing_of_the_commit_is_written(db: Path) -> None:
    with OffsetStore(db) as store:
        for bad in (-1, True, 1.5):
            with pytest.raises(ValueError, match="'bad'"):
                store.commit({"ok": (1, "/ok"), "bad": (bad, "/bad")}, T0)  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            store.commit({"ok": (1, "/ok")}, T0, reset="ok")  # type: ignore[arg-type]
        assert store.load() == {}


def test_forget_deletes_named_files_only(db: Path) -> None:
    with OffsetStore(db) as store:
        store.commit({"a": (1, "/a"), "b": (2, "/b"), "c": (3, "/c")}, T0)
        assert store.forget(["a", "c", "never-stored"]) == 2
        assert set(store.load()) == {"b"}


def test_prune_forgets_files_not_committed_for_long(db: Path) -> None:
    with OffsetStore(db) as store:
        store.commit({"gone": (1, "/gone"), "quiet": (2, "/quiet")}, T0)
        store.commit({"quiet": (2, "/quiet"), "busy": (3, "/busy")}, T0 + 6 * DAY)
        assert store.prune(older_than=7 * DAY, now=T0 + 7 * DAY) == []
        assert store.prune(older_than=7 * DAY, now=T0 + 7 * DAY + 1) == ["gone"]
        assert set(store.load()) == {"quiet", "busy"}


def test_closed_store_raises_a_store_error_naming_the_file(db: Path) -> None:
    store = OffsetStore(db)
    store.close()
    store.close()
    with pytest.raises(OffsetStoreError, match="closed") as info:
        store.load()
    assert info.value.path == db


# -- format and damage ------------------------------------------------------------------------


def test_file_is_marked_with_format_version_and_wal(db: Path) -> None:
    OffsetStore(db).close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_newer_format_version_is_refused_and_left_untouched(db: Path) -> None:
    with OffsetStore(db) as store:
        store.commit({"f": (1, "/f")}, T0)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    conn.close()
    before = digest(db)

    with pytest.raises(OffsetFormatError, match="newer agent") as info:
        OffsetStore(db)
    assert str(db) in str(info.value)
    assert (info.value.found_version, info.value.supported_version) == (
        CURRENT_VERSION + 1,
        CURRENT_VERSION,
    )
    assert digest(db) == before


def test_foreign_sqlite_database_is_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE something (x)")
    conn.close()
    with pytest.raises(OffsetFormatError, match="not a logs offset store") as info:
        OffsetStore(db)
    assert info.value.found_version is None


def test_a_file_that_is_not_a_database_is_a_clear_corruption_error(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite at all, just text someone wrote here\n" * 100)
    before = digest(db)
    with pytest.raises(OffsetCorruptError) as info:
        OffsetStore(db)
    assert str(db) in str(info.value) and "move it aside" in str(info.value)
    assert info.value.path == db
    assert digest(db) == before


def test_a_damaged_page_is_reported_at_open_with_the_path(db: Path) -> None:
    with OffsetStore(db) as store:
        store.commit(
            {f"{n}:{n}:{'x' * 40}": (n, f"/var/log/pods/p{n}/0.log") for n in range(2000)}, T0
        )
    # Closing the last connection checkpoints the WAL into the main file. Scribble over the
    # middle of it (past the header page), as a bad disk or a stray writer might.
    data = bytearray(db.read_bytes())
    assert len(data) > 8 * 4096
    data[4 * 4096 : 4 * 4096 + 2000] = b"\xa5" * 2000
    db.write_bytes(bytes(data))
    with pytest.raises(OffsetCorruptError) as info:
        OffsetStore(db)
    assert str(db) in str(info.value)


def test_unwritable_state_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(OffsetStoreError) as info:
        OffsetStore(blocker / "offsets.db")
    assert str(blocker) in str(info.value)

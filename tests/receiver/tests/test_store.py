"""SqliteStore: durability across reopen, dedup, counters and the bounded request log."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from kk_receiver.outcome import AcceptedRecord, IngestOutcome
from kk_receiver.store import SqliteStore


def outcome(ids: list[str], protocol: str = "http/3", status: int | None = 200) -> IngestOutcome:
    return IngestOutcome(
        protocol=protocol,
        kind="logs",
        received_at=100.0,
        status=status,
        records=[AcceptedRecord(i, f'{{"id":"{i}"}}') for i in ids],
        rejected={"invalid_timestamp": 1},
        log_entry={"idempotency_key": "k"},
    )


class TestSqliteStore:
    def test_reopened_store_keeps_records_counters_and_dedup(self, tmp_path: Path) -> None:
        """A restart (close + open) keeps counts, records and the dedup state."""
        path = tmp_path / "r.sqlite3"
        store = SqliteStore.open(path)
        assert store.commit(outcome(["a", "b"])).stored == 2
        store.close()
        reopened = SqliteStore.open(path)
        result = reopened.commit(outcome(["b", "c"], protocol="http/1.1"))
        assert (result.stored, result.duplicates) == (1, 1)
        assert [r.record_id for r in reopened.records("logs")] == ["a", "b", "c"]
        counters = {(p, name): v for p, _, name, v in reopened.counter_rows()}
        assert counters[("http/3", "unique_ids")] == 2
        assert counters[("http/1.1", "duplicates")] == 1
        assert counters[("http/1.1", "records_received")] == 3  # 2 valid + 1 rejected
        assert reopened.rejection_rows() == [("logs", "invalid_timestamp", 2)]
        assert [e["seq"] for e in reopened.recent_requests(10)] == [1, 2]
        reopened.close()

    def test_uses_wal_journal(self, tmp_path: Path) -> None:
        """The database runs in WAL mode (readers never block the writer)."""
        store = SqliteStore.open(tmp_path / "r.sqlite3")
        with closing(sqlite3.connect(tmp_path / "r.sqlite3")) as other:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        store.close()

    def test_closed_connection_is_counted_by_status(self) -> None:
        """A dropped connection counts as a request with status 'closed'."""
        store = SqliteStore.in_memory()
        store.commit(outcome([], status=None))
        assert ("http/3", "logs", "status:closed", 1) in store.counter_rows()
        store.close()

    def test_records_paging(self) -> None:
        """after and limit page through records in arrival order."""
        store = SqliteStore.in_memory()
        store.commit(outcome(["a", "b", "c", "d"]))
        first = store.records("logs", limit=2)
        rest = store.records("logs", after_seq=first[-1].seq)
        assert [r.record_id for r in first + rest] == ["a", "b", "c", "d"]
        store.close()

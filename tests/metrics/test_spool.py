"""The spool: a committed scrape survives a restart, an unfinished one is dropped whole."""

from __future__ import annotations

from pathlib import Path

from kk_metrics.samples import RawSample
from kk_metrics.scrape import ScrapeContext, process_samples
from kk_metrics.spool import ScrapeSpool

CONTEXT = ScrapeContext(
    source="cadvisor", producer="metrics@n", node="n", cluster="c",
    scrape_time_s=1_795_000_000.0, sample_limit=1000, batch_max_records=10,
)  # fmt: skip


def spool_a_scrape(spool: ScrapeSpool, count: int, *, commit: bool = True, scrape_ms: int = 1):
    writer = spool.begin("cadvisor", scrape_ms)
    samples = [RawSample("s", "gauge", i, {"i": str(i)}) for i in range(count)]
    process_samples(samples, CONTEXT, writer.write)
    return writer.commit() if commit else writer


def test_a_committed_scrape_is_found_again_in_order_and_forgotten_batch_by_batch(
    tmp_path: Path,
) -> None:
    spool = ScrapeSpool(tmp_path / "spool")
    committed = spool_a_scrape(spool, 25)
    assert len(committed) == 3 and spool.bytes_used == sum(b.size for b in committed)
    sent = [spool.load(batch) for batch in committed]

    after_restart = ScrapeSpool(tmp_path / "spool")
    recovered = after_restart.recover()
    assert [b.path for b in recovered] == [b.path for b in committed]
    again = [after_restart.load(batch) for batch in recovered]
    # The very same batches: ids, positions and claims (what the shipper dedups by).
    assert again == sent
    for batch in recovered:
        after_restart.remove(batch)
    assert after_restart.bytes_used == 0
    assert list((tmp_path / "spool").iterdir()) == []


def test_an_unfinished_scrape_is_dropped_at_the_next_start(tmp_path: Path) -> None:
    spool = ScrapeSpool(tmp_path / "spool")
    spool_a_scrape(spool, 25, commit=False, scrape_ms=1)
    finished = spool_a_scrape(spool, 5, scrape_ms=2)
    recovered = ScrapeSpool(tmp_path / "spool").recover()
    assert [b.path for b in recovered] == [b.path for b in finished]
    assert not list((tmp_path / "spool").glob("*.partial"))


def test_an_unreadable_batch_file_is_removed_and_counted(tmp_path: Path) -> None:
    spool = ScrapeSpool(tmp_path / "spool")
    first, second = spool_a_scrape(spool, 15)
    first.path.write_bytes(first.path.read_bytes()[:-7])  # torn
    assert spool.load(first) is None
    assert spool.unreadable == 1 and not first.path.exists()
    assert spool.load(second) is not None

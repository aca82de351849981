"""CPU cost of one cAdvisor scrape in the metrics service, in CPU-seconds per 100,000 series.

    .venv/bin/python benchmarks/metrics_scrape_cost.py [--series 100000] [--repeat 3]

A generated cAdvisor page (the tests' `cadvisor_page`: 12 labels per series, a timestamp on
every line, about 390 bytes a line) is written to a file once, then each stage is timed on
its own, the least process CPU time (user + system) of ``--repeat`` runs:

* **prometheus-client**: ``text_fd_to_metric_families`` over the file, every sample touched
  (the parser the service used first, for comparison).
* **parse**: `kk_metrics.exposition.parse_exposition` over the file (what the service runs).
* **scrape**: `kk_metrics.scrape.read_and_spool`: parse, label, id, encode, cut into batches
  and write them to a spool directory (fsync included), as one scrape of the service.

CPU time, not wall time, is what is compared: other work on the machine changes wall time
far more than CPU time. Only what every version of the service has is used, so the same
script measures an older tree (put that tree's ``services/*/src`` first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_fd_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kk_metrics.exposition import parse_exposition
from kk_metrics.scrape import ScrapeContext, read_and_spool
from kk_metrics.spool import ScrapeSpool
from tests.metrics.metrics_kubelet import cadvisor_page

SERIES_PER_POD = 12  # cadvisor_page: 4 families x 3 containers


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _least_cpu(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        started = _cpu_seconds()
        count = run()
        best = min(best, _cpu_seconds() - started)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pods = -(-args.series // SERIES_PER_POD)
    work = Path(tempfile.mkdtemp(prefix="kk-metrics-bench-"))
    try:
        page = work / "cadvisor.txt"
        page.write_text(cadvisor_page(pods), encoding="utf-8")
        size_mb = page.stat().st_size / 1e6

        def lines() -> object:
            return page.open("r", encoding="utf-8", errors="replace", newline="\n")

        def client_only() -> int:
            with lines() as fd:  # type: ignore[attr-defined]
                return sum(len(family.samples) for family in text_fd_to_metric_families(fd))

        def ours() -> int:
            with lines() as fd:  # type: ignore[attr-defined]
                return sum(1 for _ in parse_exposition(fd))

        def scrape() -> int:
            spool_dir = work / "spool"
            shutil.rmtree(spool_dir, ignore_errors=True)
            context = ScrapeContext(
                source="cadvisor",
                producer="metrics@node-a",
                node="node-a",
                cluster="bench",
                scrape_time_s=time.time(),
                sample_limit=1_000_000,
                batch_max_records=1000,
            )
            processed = read_and_spool(
                "prometheus",
                body=page,
                node=None,
                context=context,
                spool=ScrapeSpool(spool_dir),
                deadline=time.monotonic() + 3600,
            )
            return processed.samples

        print(f"page: {pods * SERIES_PER_POD:,} series, {size_mb:.1f} MB")
        for name, run in (("prometheus-client", client_only), ("parse", ours), ("scrape", scrape)):
            seconds, count = _least_cpu(run, args.repeat)
            per_100k = seconds * 100_000 / count
            print(f"{name:>18}: {seconds:6.2f} CPU-s for {count:,} samples = "
                  f"{per_100k:.2f} CPU-s per 100k")  # fmt: skip
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak_mib:.0f} MiB (the page is generated in memory)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

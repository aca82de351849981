"""`process_samples`: this process's own metrics, with Prometheus' names and types."""

from __future__ import annotations

import os
import time

import pytest

from kk_common.process_metrics import process_samples


def by_name(samples: list) -> dict:
    return {sample.name: sample for sample in samples}


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="Linux /proc")
def test_the_samples_describe_this_process() -> None:
    before = time.process_time()
    samples = by_name(process_samples(version="1.2.3"))
    assert samples["process_cpu_seconds_total"].kind == "counter"
    assert samples["process_cpu_seconds_total"].value >= before
    assert samples["process_resident_memory_bytes"].value > 1_000_000
    assert (
        samples["process_virtual_memory_bytes"].value
        >= samples["process_resident_memory_bytes"].value
    )
    assert samples["process_open_fds"].value >= 3
    started = samples["process_start_time_seconds"].value
    assert time.time() - 24 * 3600 < started <= time.time()
    info = samples["killkrill_agent_build_info"]
    assert (info.kind, info.value, info.labels["version"]) == ("gauge", 1.0, "1.2.3")
    assert all(sample.help for sample in samples.values())


def test_without_proc_only_what_the_standard_library_knows_is_sent(tmp_path) -> None:
    samples = by_name(process_samples(version="1", proc=str(tmp_path / "no-proc")))
    assert "process_cpu_seconds_total" in samples
    assert "process_resident_memory_bytes" not in samples
    assert "process_open_fds" not in samples
    assert "process_start_time_seconds" not in samples

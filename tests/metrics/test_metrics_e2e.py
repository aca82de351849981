"""The metrics container as a real process, with the real shipper and reference receiver
(HTTP/3), a fake kubelet over HTTPS and a fixture /proc + /sys tree; audited by record id."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ShipperProcess, TelemetryListener
from metrics_kubelet import MetricsKubelet, cadvisor_page, summary_document
from service_support import TOKEN

from kk_metrics.spool import ScrapeSpool, SpooledBatch
from kk_receiver.testing import ReceiverProcess, wait_until
from tests.logs.fake_apiserver import make_tls_files
from tests.metrics.test_node import DISKSTATS, MEMINFO, NETDEV, STAT

METRICS = Path(sys.executable).with_name("killkrill-metrics")


class MetricsProcess:
    """``killkrill-metrics`` sharing the shipper's config, IPC and state directories."""

    def __init__(self, shipper: ShipperProcess) -> None:
        self.shipper = shipper
        self.log_path = shipper.dir / "metrics.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MetricsProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(METRICS)], env=self.shipper.env(), stdout=log, stderr=log
        )
        log.close()
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if f'"{name}"' in line:
                entry = json.loads(line)
                if entry.get("event") == name:
                    found.append(entry)
        return found

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def host_tree(root: Path) -> dict[str, str]:
    proc = root / "proc"
    (proc / "1" / "net").mkdir(parents=True)
    (proc / "stat").write_text(STAT)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "loadavg").write_text("0.50 0.25 0.10 3/812 4242\n")
    (proc / "diskstats").write_text(DISKSTATS)
    (proc / "1" / "net" / "dev").write_text(NETDEV)
    (root / "sys").mkdir()
    return {"proc_path": str(proc), "sys_path": str(root / "sys"), "rootfs_path": "/nonexistent"}


def metrics_section(
    receiver: ReceiverProcess, kubelet: MetricsKubelet, token_file: Path, **extra: Any
) -> dict[str, Any]:
    def source(name: str, path: str, **more: Any) -> dict[str, Any]:
        return {
            "name": name,
            "url": kubelet.url(path),
            "bearer_token_file": str(token_file),
            "ca_file": str(kubelet.tls.ca),
            **more,
        }

    section = {
        "enabled": True,
        "interval": "2s",
        "timeout": "1500ms",
        "batch_max_records": 500,
        "sources": [
            source("kubelet", "/metrics", optional=True),
            source("cadvisor", "/metrics/cadvisor", optional=True),
            source("summary", "/stats/summary", format="kubelet_summary", optional=True),
        ],
        "node": {"enabled": False},
        "pods": {"enabled": False},  # no cluster here
        "output": {
            "url": receiver.https_url,
            "flush_interval": "200ms",
            "tls": {"ca_file": str(receiver.ca_file)},
            "retry": {"initial_backoff": "100ms", "max_backoff": "1s"},
        },
    }
    section.update(extra)
    return section


@pytest.fixture
def kubelet(tmp_path: Path):
    with MetricsKubelet(tls=make_tls_files(tmp_path / "tls"), token=TOKEN) as fake:
        yield fake


def metric_records(receiver: ReceiverProcess) -> list[dict[str, Any]]:
    return [entry["record"] for entry in receiver.records("metrics")]


def test_every_source_arrives_once_with_its_labels_and_telemetry(kubelet, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    kubelet.serve("/metrics", '# TYPE up gauge\nup{job="kubelet"} 1\nbad_value NaN\n', times=1)
    kubelet.serve("/metrics/cadvisor", cadvisor_page(20), times=1)
    kubelet.serve("/stats/summary", json.dumps(summary_document()), json=True, times=1)
    with ReceiverProcess() as receiver:
        shipper = ShipperProcess(receiver)
        shipper.config["metrics"] = metrics_section(
            receiver, kubelet, token_file, node={"enabled": True, **host_tree(tmp_path)}
        )
        shipper.config["shipper"]["ack_timeout"] = "1s"
        listener = TelemetryListener(shipper.ipc_dir)
        metrics = MetricsProcess(shipper)
        try:
            with shipper:
                metrics.start()
                # One scrape of each page (later ones get 404: quiet, the sources are optional).
                expected_min = 1 + 20 * 3 * 4 + 80
                wait_until(
                    lambda: (
                        kubelet.count("/stats/summary") >= 1
                        and {r["labels"]["source"] for r in metric_records(receiver)}
                        >= {"kubelet", "cadvisor", "summary", "node"}
                        and sum(r["labels"]["source"] != "node" for r in metric_records(receiver))
                        >= expected_min
                    ),
                    timeout=60,
                )
                # The next scrape of the page gets 404, counted in the telemetry.
                wait_until(
                    lambda: listener.sample(
                        "killkrill_metrics_scrape_errors_total",
                        component="metrics",
                        source="cadvisor",
                        reason="http_404",
                    ),
                    timeout=30,
                )
                scraped = listener.sample(
                    "killkrill_metrics_samples_scraped_total",
                    component="metrics",
                    source="cadvisor",
                )
                assert scraped == 240
                # Health's OUT/s: samples the shipper stored, as acknowledged.
                wait_until(
                    lambda: (
                        (
                            listener.sample(
                                "killkrill_metrics_samples_acknowledged_total", component="metrics"
                            )
                            or 0
                        )
                        >= expected_min
                    ),
                    timeout=30,
                )
                assert metrics.stop() == 0
        finally:
            listener.close()
            metrics.close()
        records = metric_records(receiver)
        stats = receiver.stats()["by_kind"]["metrics"]
    by_source = Counter(r["labels"]["source"] for r in records)
    assert by_source["kubelet"] == 1 and by_source["cadvisor"] == 240
    assert by_source["summary"] >= 80 and by_source["node"] >= 40
    assert stats["duplicates"] == 0 and stats["rejected"] == 0
    assert all(
        r["labels"]["k8s_node"] == "node-e2e" and r["labels"]["k8s_cluster"] == "e2e"
        for r in records
    )
    # Later scrapes get 404: counted, but quiet (debug only), as the sources are optional.
    failures = metrics.events("scrape_failed")
    assert failures and {f["reason"] for f in failures} == {"http_404"}
    assert {f["level"] for f in failures} == {"debug"}


def test_kill_9_mid_delivery_loses_and_duplicates_nothing(kubelet, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    pods = 400
    expected = pods * 3 * 4  # 4,800 samples in 10 batches of 500
    kubelet.serve("/metrics/cadvisor", cadvisor_page(pods), times=1)
    with ReceiverProcess() as receiver:
        # The receiver refuses metrics (503, retried) and the shipper's queue holds about
        # three batches: the shipper stores and acknowledges some of the scrape, then holds
        # the rest unacknowledged. That is the moment to kill the metrics container.
        receiver.set_faults([{"status": 503, "kind": "metrics", "times": 10_000}])
        shipper = ShipperProcess(receiver, shipper={"queue_max_size": "1MB"})
        shipper.config["metrics"] = metrics_section(receiver, kubelet, token_file)
        shipper.config["shipper"]["ack_timeout"] = "1s"
        spool = shipper.state_dir / "metrics" / "spool"
        metrics = MetricsProcess(shipper)
        try:
            with shipper:
                metrics.start()
                wait_until(lambda: bool(shipper.events("queue_full")), timeout=60)

                def scrape_files() -> list[Path]:
                    return sorted(spool.glob("*-cadvisor/*.kkb")) if spool.exists() else []

                # Acknowledged batches' files are gone, the held ones' are still there.
                wait_until(lambda: 0 < len(scrape_files()) < expected // 500, timeout=30)
                metrics.kill()
                left = scrape_files()
                reader = ScrapeSpool(spool)
                spooled_ids = {i for path in left for i in reader.load(SpooledBatch(path, 0)).ids}
                assert 0 < len(spooled_ids) < expected

                receiver.clear_faults()
                metrics.start()
                wait_until(lambda: len(metric_records(receiver)) >= expected, timeout=90)
                wait_until(lambda: not scrape_files(), timeout=30)  # all acknowledged now
                assert metrics.stop() == 0
        finally:
            metrics.close()
        records = metric_records(receiver)
        stats = receiver.stats()["by_kind"]["metrics"]
    ids = [r["id"] for r in records]
    assert len(ids) == expected and len(set(ids)) == expected
    assert spooled_ids <= set(ids)
    assert stats["duplicates"] == 0
    assert {r["labels"]["source"] for r in records} == {"cadvisor"}
    assert metrics.events("metrics_started")[-1]["spooled_batches"] == len(left)

"""Stored offsets are forgotten once their file is gone for good, and only then.

The offset store is written first, with explicit times, as a previous run left it; then a
`LogsService` over the real directory starts (its sender replaced, as in
``test_service_records.py``), follows what is there, and prunes at an explicit ``now``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import zmq.asyncio

from kk_logs.app import OFFSETS_RETENTION_S, LogsService, offsets_path
from kk_logs.metadata import PodCache
from kk_logs.offsets import OffsetStore
from kk_logs.tailing.identity import identify
from tests.logs.test_service_records import RecordingSender, cri, reading_config

NOW = 1_800_000_000.0
LONG_AGO = NOW - OFFSETS_RETENTION_S - 60
RECENTLY = NOW - 60


def key_of(path: Path) -> str:
    info = path.stat()
    identity = identify(info.st_dev, info.st_ino, path.read_bytes(), final=True)
    assert identity is not None
    return identity.key


def test_only_files_gone_from_disk_unfollowed_and_old_are_forgotten(tmp_path: Path) -> None:
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    followed = logs_dir / "followed.log"
    followed.write_bytes(cri("stdout", "F", "still being read"))
    kept_by_kubelet = logs_dir / "idle.log.20261201-000000"
    kept_by_kubelet.write_bytes(cri("stdout", "F", "rotated, read to its end, still on disk"))
    config = reading_config(tmp_path, str(logs_dir / "*.log"))
    rows = {
        key_of(followed): ((0, str(followed)), LONG_AGO),
        key_of(kept_by_kubelet): ((10, str(kept_by_kubelet)), LONG_AGO),
        "1.2.aaaa": ((10, str(logs_dir / "gone-long-ago.log")), LONG_AGO),
        "1.3.bbbb": ((10, str(logs_dir / "gone-recently.log")), RECENTLY),
    }
    with OffsetStore(offsets_path(config)) as store:
        for key, (row, at) in rows.items():
            store.commit({key: row}, at)

    context = zmq.asyncio.Context()
    service = LogsService(
        config, context=context, pods=PodCache(), clock=lambda: NOW, monotonic=lambda: 10.0
    )
    real_sender, service.sender = service.sender, RecordingSender()  # type: ignore[assignment]
    try:
        asyncio.run(service.step())  # the tailer opens followed.log
        assert [s.path for s in service.tailer.stats().files] == [str(followed)]
        os.unlink(followed)  # deleted, but still followed (draining within its grace)

        assert service.prune_offsets(NOW) == ["1.2.aaaa"]
        assert set(service.offsets.load()) == set(rows) - {"1.2.aaaa"}
        assert service.prune_offsets(NOW) == []
    finally:
        real_sender.close()
        service.telemetry.close()
        service.tailer.close()
        service.offsets.close()
        context.destroy(linger=0)

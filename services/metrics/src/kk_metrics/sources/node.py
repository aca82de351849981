"""Reads the host's /proc and /sys (mounted into the container) for the node's metrics.

The parsing is in `procfs` (sans-IO); this module only reads files. ``proc_path`` must
hold the host's /proc: without ``/proc/stat`` the scrape fails with an error that says
which mount is missing. Everything else is best effort: a file that a kernel does not have
(no swap, no cpufreq) gives no samples and no error. Filesystem usage needs the host's root
mounted at ``rootfs_path``; without it, only the other metrics are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from kk_metrics.samples import RawSample
from kk_metrics.sources import procfs

__all__ = ["NodeMetricsUnavailable", "NodeReader"]


class NodeMetricsUnavailable(OSError):
    """The host's /proc is not where the configuration says."""


class NodeReader:
    """Reads one snapshot of the node's metrics."""

    def __init__(self, *, proc_path: str, sys_path: str, rootfs_path: str) -> None:
        self.proc = Path(proc_path)
        self.sys = Path(sys_path)
        self.rootfs = Path(rootfs_path)

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def read(self) -> Iterator[RawSample]:
        stat = self._read(self.proc / "stat")
        if stat is None:
            raise NodeMetricsUnavailable(
                f"{self.proc / 'stat'} cannot be read: mount the host's /proc at "
                f"metrics.node.proc_path ({self.proc}), or set metrics.node.enabled: false"
            )
        yield from procfs.cpu_stat_samples(stat)
        for name, parse in (
            ("meminfo", procfs.meminfo_samples),
            ("loadavg", procfs.loadavg_samples),
            ("diskstats", procfs.diskstats_samples),
            ("1/net/dev", procfs.netdev_samples),
        ):
            text = self._read(self.proc / name)
            if text is not None:
                yield from parse(text)
        yield RawSample("node_processes", "gauge", self._count_processes(), {})
        yield from self._network_interfaces()
        yield from self._filesystems()

    def _count_processes(self) -> int:
        try:
            return sum(1 for entry in os.scandir(self.proc) if entry.name.isdigit())
        except OSError:
            return 0

    def _network_interfaces(self) -> Iterator[RawSample]:
        """``/sys/class/net/<device>/{operstate,mtu,speed}``: up, MTU and link speed."""
        try:
            devices = sorted(entry.name for entry in os.scandir(self.sys / "class" / "net"))
        except OSError:
            return
        for device in devices:
            labels = {"device": device}
            base = self.sys / "class" / "net" / device
            state = self._read(base / "operstate")
            if state is not None:
                up = 1 if state.strip() == "up" else 0
                yield RawSample("node_network_up", "gauge", up, labels)
            for name, metric, scale in (
                ("mtu", "node_network_mtu_bytes", 1),
                ("speed", "node_network_speed_bytes", 125_000),  # Mbit/s to bytes/s
            ):
                text = self._read(base / name)
                if text is not None and text.strip().lstrip("-").isdigit():
                    value = int(text.strip())
                    if value >= 0:
                        yield RawSample(metric, "gauge", value * scale, labels)

    def _filesystems(self) -> Iterator[RawSample]:
        mounts_text = self._read(self.proc / "1" / "mounts")
        if mounts_text is None or not self.rootfs.is_dir():
            return
        measured = []
        for device, mountpoint, fstype in procfs.interesting_mounts(mounts_text):
            target = self.rootfs / mountpoint.lstrip("/")
            try:
                st = os.statvfs(target)
            except OSError:
                measured.append((device, mountpoint, fstype, None))
                continue
            stats = (st.f_frsize, st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree)
            measured.append((device, mountpoint, fstype, stats))
        yield from procfs.filesystem_samples(measured)

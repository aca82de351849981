"""The host's /proc and /sys files into `RawSample`s (sans-IO: each function takes text).

Names follow node-exporter's, so dashboards written for it read these samples:
``node_cpu_seconds_total{cpu,mode}``, ``node_memory_<Field>_bytes``, ``node_load1``,
``node_disk_read_bytes_total{device}``, ``node_network_receive_bytes_total{device}``,
``node_filesystem_size_bytes{device,fstype,mountpoint}``, ``node_procs_running``, ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from kk_metrics.samples import RawSample

__all__ = [
    "USER_HZ",
    "cpu_stat_samples",
    "diskstats_samples",
    "filesystem_samples",
    "interesting_mounts",
    "loadavg_samples",
    "meminfo_samples",
    "netdev_samples",
]

USER_HZ = 100
"""Clock ticks per second in /proc/stat (fixed at 100 for user space on Linux)."""

_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_SECTOR_BYTES = 512
_IGNORED_DISKS = re.compile(r"^(ram|loop|fd|sr)\d+$")
_MEMINFO_NAME = re.compile(r"[^a-zA-Z0-9_]")

VIRTUAL_FILESYSTEMS = frozenset(
    [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
        "tmpfs",
        "shm",
    ]
)
"""File systems with no disk space of their own (or whose usage says nothing about the node)."""

REMOTE_FILESYSTEMS = frozenset(["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p"])
"""Never stat-ed: a dead server makes ``statvfs`` hang, and a hung thread cannot be ended."""

_IGNORED_MOUNT_PREFIXES = (
    "/proc/",
    "/sys/",
    "/dev/",
    "/run/containerd/",
    "/var/lib/kubelet/pods/",
    "/var/lib/docker/",
    "/var/lib/containerd/",
)


def cpu_stat_samples(text: str) -> Iterator[RawSample]:
    """``/proc/stat``: CPU time per CPU and mode, context switches, forks, boot time,
    running and blocked processes."""
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = fields[0]
        if key.startswith("cpu") and key != "cpu":
            cpu = key[3:]
            for mode, ticks in zip(_CPU_MODES, fields[1:], strict=False):
                yield RawSample(
                    "node_cpu_seconds_total",
                    "counter",
                    int(ticks) / USER_HZ,
                    {"cpu": cpu, "mode": mode},
                )
        elif key == "ctxt":
            yield RawSample("node_context_switches_total", "counter", int(fields[1]), {})
        elif key == "processes":
            yield RawSample("node_forks_total", "counter", int(fields[1]), {})
        elif key == "btime":
            yield RawSample("node_boot_time_seconds", "gauge", int(fields[1]), {})
        elif key == "procs_running":
            yield RawSample("node_procs_running", "gauge", int(fields[1]), {})
        elif key == "procs_blocked":
            yield RawSample("node_procs_blocked", "gauge", int(fields[1]), {})


def meminfo_samples(text: str) -> Iterator[RawSample]:
    """``/proc/meminfo``: every field, in bytes when the kernel gives kB."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not name or not parts:
            continue
        field = _MEMINFO_NAME.sub("_", name.replace("(", "_").replace(")", ""))
        if len(parts) > 1 and parts[1] == "kB":
            yield RawSample(f"node_memory_{field}_bytes", "gauge", int(parts[0]) * 1024, {})
        else:
            yield RawSample(f"node_memory_{field}", "gauge", int(parts[0]), {})


def loadavg_samples(text: str) -> Iterator[RawSample]:
    """``/proc/loadavg``: the load averages and the number of threads."""
    fields = text.split()
    for name, value in zip(("node_load1", "node_load5", "node_load15"), fields, strict=False):
        yield RawSample(name, "gauge", float(value), {})
    if len(fields) > 3 and "/" in fields[3]:
        yield RawSample("node_processes_threads", "gauge", int(fields[3].split("/")[1]), {})


def diskstats_samples(text: str) -> Iterator[RawSample]:
    """``/proc/diskstats``: reads, writes, bytes, time and I/O in progress per disk."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 14 or _IGNORED_DISKS.match(fields[2]):
            continue
        device = {"device": fields[2]}
        values = [int(v) for v in fields[3:14]]
        (reads, _, read_sectors, read_ms, writes, _, write_sectors, write_ms) = values[:8]
        in_progress, io_ms = values[8], values[9]
        yield RawSample("node_disk_reads_completed_total", "counter", reads, device)
        yield RawSample(
            "node_disk_read_bytes_total", "counter", read_sectors * _SECTOR_BYTES, device
        )
        yield RawSample("node_disk_read_time_seconds_total", "counter", read_ms / 1000, device)
        yield RawSample("node_disk_writes_completed_total", "counter", writes, device)
        yield RawSample(
            "node_disk_written_bytes_total", "counter", write_sectors * _SECTOR_BYTES, device
        )
        yield RawSample("node_disk_write_time_seconds_total", "counter", write_ms / 1000, device)
        yield RawSample("node_disk_io_now", "gauge", in_progress, device)
        yield RawSample("node_disk_io_time_seconds_total", "counter", io_ms / 1000, device)


_NETDEV_FIELDS = (
    ("receive_bytes", 0),
    ("receive_packets", 1),
    ("receive_errs", 2),
    ("receive_drop", 3),
    ("transmit_bytes", 8),
    ("transmit_packets", 9),
    ("transmit_errs", 10),
    ("transmit_drop", 11),
)


def netdev_samples(text: str) -> Iterator[RawSample]:
    """``/proc/net/dev`` (of the host's network namespace): bytes, packets, errors and
    drops per interface."""
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        values = rest.split()
        if not name.strip() or len(values) < 16:
            continue
        device = {"device": name.strip()}
        for field, index in _NETDEV_FIELDS:
            yield RawSample(f"node_network_{field}_total", "counter", int(values[index]), device)


def interesting_mounts(text: str) -> Iterator[tuple[str, str, str]]:
    """``(device, mountpoint, fstype)`` of the local disk file systems in a mounts file,
    each mount point once (``/proc/1/mounts`` is the host's view)."""
    seen: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mountpoint, fstype = fields[0], _unescape(fields[1]), fields[2]
        if (
            fstype in VIRTUAL_FILESYSTEMS
            or fstype in REMOTE_FILESYSTEMS
            or fstype.startswith("fuse")
            or mountpoint.startswith(_IGNORED_MOUNT_PREFIXES)
            or mountpoint in seen
        ):
            continue
        seen.add(mountpoint)
        yield device, mountpoint, fstype


def _unescape(path: str) -> str:
    # The kernel writes space, tab, newline and backslash in mount points as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def filesystem_samples(
    mounts: Iterable[tuple[str, str, str, tuple[int, int, int, int, int, int] | None]],
) -> Iterator[RawSample]:
    """Usage per mount: ``(device, mountpoint, fstype, statvfs)`` with statvfs as
    ``(f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree)``, None when it failed."""
    for device, mountpoint, fstype, stats in mounts:
        labels = {"device": device, "mountpoint": mountpoint, "fstype": fstype}
        if stats is None:
            yield RawSample("node_filesystem_device_error", "gauge", 1, labels)
            continue
        frsize, blocks, bfree, bavail, files, ffree = stats
        yield RawSample("node_filesystem_device_error", "gauge", 0, labels)
        yield RawSample("node_filesystem_size_bytes", "gauge", blocks * frsize, labels)
        yield RawSample("node_filesystem_free_bytes", "gauge", bfree * frsize, labels)
        yield RawSample("node_filesystem_avail_bytes", "gauge", bavail * frsize, labels)
        yield RawSample("node_filesystem_files", "gauge", files, labels)
        yield RawSample("node_filesystem_files_free", "gauge", ffree, labels)

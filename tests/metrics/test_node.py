"""Node metrics from a fixture /proc + /sys tree laid out like the host's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kk_metrics.sources.node import NodeMetricsUnavailable, NodeReader

STAT = """cpu  1000 20 300 40000 50 0 6 0 0 0
cpu0 600 10 200 20000 25 0 3 0 0 0
cpu1 400 10 100 20000 25 0 3 7 0 0
intr 12345 0 0
ctxt 987654
btime 1764150000
processes 4321
procs_running 3
procs_blocked 1
"""
MEMINFO = """MemTotal:        8000000 kB
MemFree:         1000000 kB
MemAvailable:    5000000 kB
Active(anon):     200000 kB
HugePages_Total:       0
"""
DISKSTATS = """   7       0 loop0 10 0 20 0 0 0 0 0 0 0 0 0 0 0 0
 259       0 nvme0n1 1000 5 20000 400 2000 10 40000 800 2 1500 1200 0 0 0 0 0 0
"""
NETDEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop "
    "fifo colls carrier compressed\n"
    "    lo:  5000      50    0    0    0     0          0         0     5000      50    0    0 "
    "   0     0       0          0\n"
    "  eth0: 123456   1000    2    3    0     0          0         0   654321    2000    4    5 "
    "   0     0       0          0\n"
)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    proc, sys_, root = tmp_path / "proc", tmp_path / "sys", tmp_path / "root"
    (proc / "1" / "net").mkdir(parents=True)
    for pid in ("1", "42", "4242"):
        (proc / pid).mkdir(exist_ok=True)
    (proc / "self").mkdir()
    (proc / "stat").write_text(STAT)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "loadavg").write_text("0.50 0.25 0.10 3/812 4242\n")
    (proc / "diskstats").write_text(DISKSTATS)
    (proc / "1" / "net" / "dev").write_text(NETDEV)
    (root / "data").mkdir(parents=True)
    (proc / "1" / "mounts").write_text(
        "/dev/nvme0n1p1 / ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
        "/dev/nvme0n1p2 /data xfs rw 0 0\n"
        "server:/x /mnt/nfs nfs4 rw 0 0\n"
        "overlay /var/lib/containerd/io/rootfs overlay rw 0 0\n"
        "/dev/sdb1 /gone ext4 rw 0 0\n"
    )
    eth0 = sys_ / "class" / "net" / "eth0"
    eth0.mkdir(parents=True)
    (eth0 / "operstate").write_text("up\n")
    (eth0 / "mtu").write_text("1500\n")
    (eth0 / "speed").write_text("1000\n")
    lo = sys_ / "class" / "net" / "lo"
    lo.mkdir()
    (lo / "operstate").write_text("unknown\n")
    (lo / "speed").write_text("-1\n")
    return tmp_path


def read(host: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reader = NodeReader(
        proc_path=str(host / "proc"), sys_path=str(host / "sys"), rootfs_path=str(host / "root")
    )
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in reader.read()}


def test_cpu_memory_load_disks_network_and_processes(host: Path) -> None:
    values = read(host)
    assert values[("node_cpu_seconds_total", (("cpu", "0"), ("mode", "user")))] == 6.0
    assert values[("node_cpu_seconds_total", (("cpu", "1"), ("mode", "steal")))] == 0.07
    assert ("node_cpu_seconds_total", (("cpu", ""), ("mode", "user"))) not in values
    assert values[("node_context_switches_total", ())] == 987654
    assert values[("node_procs_running", ())] == 3
    assert values[("node_memory_MemAvailable_bytes", ())] == 5_000_000 * 1024
    assert values[("node_memory_Active_anon_bytes", ())] == 200_000 * 1024
    assert values[("node_memory_HugePages_Total", ())] == 0
    assert values[("node_load1", ())] == 0.5
    assert values[("node_processes_threads", ())] == 812
    assert values[("node_processes", ())] == 3
    disk = (("device", "nvme0n1"),)
    assert values[("node_disk_read_bytes_total", disk)] == 20000 * 512
    assert values[("node_disk_io_time_seconds_total", disk)] == 1.5
    assert ("node_disk_reads_completed_total", (("device", "loop0"),)) not in values
    eth0 = (("device", "eth0"),)
    assert values[("node_network_receive_bytes_total", eth0)] == 123456
    assert values[("node_network_transmit_drop_total", eth0)] == 5
    assert values[("node_network_up", eth0)] == 1
    assert values[("node_network_mtu_bytes", eth0)] == 1500
    assert values[("node_network_speed_bytes", eth0)] == 125_000_000
    assert values[("node_network_up", (("device", "lo"),))] == 0
    assert ("node_network_speed_bytes", (("device", "lo"),)) not in values


def test_filesystems_of_local_disks_are_measured_under_the_host_root(host: Path) -> None:
    values = read(host)
    measured = {
        dict(labels)["mountpoint"]: value
        for (name, labels), value in values.items()
        if name == "node_filesystem_device_error"
    }
    # Virtual, remote and container file systems are left alone; a mount point that cannot
    # be stat-ed is reported as an error, not a crash.
    assert measured == {"/": 0, "/data": 0, "/gone": 1}
    root = (("device", "/dev/nvme0n1p1"), ("fstype", "ext4"), ("mountpoint", "/"))
    expected = os.statvfs(host / "root")
    assert values[("node_filesystem_size_bytes", root)] == expected.f_blocks * expected.f_frsize


def test_without_the_hosts_proc_the_error_names_the_mount(tmp_path: Path) -> None:
    reader = NodeReader(
        proc_path=str(tmp_path / "nope"), sys_path=str(tmp_path), rootfs_path=str(tmp_path)
    )
    with pytest.raises(NodeMetricsUnavailable, match=r"mount the host's /proc at"):
        list(reader.read())

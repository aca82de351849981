"""A private network namespace for a scenario, and a UDP firewall inside it.

`private_network` moves the calling thread into a new network namespace that has only its
own loopback, for the duration of a ``with`` block: every process started inside (the
receiver, the four services) lives there, and so does every socket the test opens, so a
firewall rule added there (`UdpBlock`, iptables) touches nothing on the host. On exit the
thread returns to the namespace it came from; the private one disappears with its last
process. This is recipe (d) of test-recipes.md section 2 ("one throwaway namespace,
nothing to clean up"), done in-process with unshare(2) and setns(2) so the test keeps
talking to its processes directly.

It needs root (CAP_SYS_ADMIN for unshare, CAP_NET_ADMIN for the rule), ``ip`` and
``iptables``; `network_unavailable` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def network_unavailable() -> str | None:
    """Why a private namespace with a firewall cannot be had here, or None."""
    if os.geteuid() != 0:
        return "blocking UDP needs root (a private network namespace and an iptables rule)"
    missing = [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian: iproute2, iptables)"
    return None


@contextlib.contextmanager
def private_network() -> Iterator[None]:
    """Run the block in a new network namespace whose loopback is up."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
            yield
        finally:
            if _libc.setns(original, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
    finally:
        os.close(original)


class UdpBlock:
    """Drops outgoing UDP to one port (iptables, in the current namespace), as a firewall
    that blocks QUIC does; the rule counts what it dropped."""

    def __init__(self, port: int) -> None:
        self.rule = ["OUTPUT", "-p", "udp", "--dport", str(port), "-j", "DROP"]
        self.active = False

    def block(self) -> None:
        subprocess.run(["iptables", "-A", *self.rule], check=True, capture_output=True)
        self.active = True

    def unblock(self) -> None:
        subprocess.run(["iptables", "-D", *self.rule], check=True, capture_output=True)
        self.active = False

    def dropped_packets(self) -> int:
        """Packets the rule has dropped so far (0 when it is not in place)."""
        listing = subprocess.run(
            ["iptables", "-L", "OUTPUT", "-n", "-v", "-x"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        port = f"dpt:{self.rule[4]}"
        return sum(
            int(line.split()[0]) for line in listing.splitlines() if port in line and "DROP" in line
        )

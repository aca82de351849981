"""Binding listening sockets, including one port number free on both TCP and UDP.

A real receiver serves HTTP/1.1 over TCP and HTTP/3 over UDP on the same port
(``https://host:8443``). With port 0 the kernel picks TCP and UDP ports independently, so the
shared number is found by trying: bind TCP to an ephemeral port, then UDP to the same number.
The sockets are handed to the servers already bound, so no other process can take the port in
between.
"""

from __future__ import annotations

import errno
import socket

_SHARED_PORT_ATTEMPTS = 50


def bind_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)``, ready for ``asyncio.start_server(sock=...)``."""
    sock = _socket(host, socket.SOCK_STREAM)
    try:
        # Lets a restarted receiver take its port back while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``(host, port)``. No SO_REUSEADDR: on Linux it would let two
    receivers share a UDP port and split the QUIC packets between them."""
    sock = _socket(host, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_tcp_and_udp(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """TCP and UDP sockets on the same port number; ``port=0`` picks one free on both."""
    if port != 0:
        tcp = bind_tcp(host, port)
        try:
            return tcp, bind_udp(host, port)
        except OSError:
            tcp.close()
            raise
    for _ in range(_SHARED_PORT_ATTEMPTS):
        tcp = bind_tcp(host, 0)
        try:
            return tcp, bind_udp(host, tcp.getsockname()[1])
        except OSError as exc:
            tcp.close()
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no port free on both TCP and UDP on {host}")


def _socket(host: str, kind: socket.SocketKind) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if family == socket.AF_INET6 and host == "::":
        # "::" means every address: accept IPv4 too (dual stack), as a container needs.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return sock

"""A UDP relay for HTTP/3 tests: forwards datagrams to a target, or drops them all on demand.

Put it between an HTTP/3 client and the receiver's UDP port to simulate a firewall that
blocks UDP (``relay.dropping = True``), before the handshake or in the middle of a
connection, without root or any change to the host's network. Dropping is silent, like an
nft DROP: aioquic ignores ICMP anyway (test-recipes section 2), so a REJECT would look the same.

Runs inside the test's event loop::

    async with UdpRelay(("127.0.0.1", receiver.h3_port)) as relay:
        transport = H3Transport("127.0.0.1", relay.port, ...)
        relay.dropping = True
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, cast

__all__ = ["UdpRelay"]

Address = tuple[str, int]


class _Upstream(asyncio.DatagramProtocol):
    """The relay's socket towards the target for one client address."""

    def __init__(self, relay: UdpRelay, client: Address) -> None:
        self._relay = relay
        self._client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._relay._to_client(data, self._client)


class _Downstream(asyncio.DatagramProtocol):
    """The relay's listening socket, facing clients."""

    def __init__(self, relay: UdpRelay) -> None:
        self._relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._relay._to_target(data, (addr[0], addr[1]))


class UdpRelay:
    """Forward UDP between clients and ``target``; drop everything while ``dropping``.

    Attributes:
        dropping: While True, datagrams in both directions are discarded.
        forwarded: Datagrams relayed so far (both directions).
        dropped: Datagrams discarded so far (both directions).
    """

    def __init__(self, target: Address, host: str = "127.0.0.1") -> None:
        self._target = target
        self._host = host
        self.dropping = False
        self.forwarded = 0
        self.dropped = 0
        self._listener: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Address, _Upstream] = {}
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The UDP port clients send to."""
        assert self._listener is not None, "relay not started"
        return int(self._listener.get_extra_info("sockname")[1])

    async def start(self) -> UdpRelay:
        """Bind the listening socket on an ephemeral port."""
        loop = asyncio.get_running_loop()
        self._listener, _ = await loop.create_datagram_endpoint(
            lambda: _Downstream(self), local_addr=(self._host, 0)
        )
        return self

    async def close(self) -> None:
        """Close every socket."""
        for task in self._pending:
            task.cancel()
        for upstream in self._upstreams.values():
            if upstream.transport is not None:
                upstream.transport.close()
        self._upstreams.clear()
        if self._listener is not None:
            self._listener.close()

    async def __aenter__(self) -> UdpRelay:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # forwarding

    def _to_target(self, data: bytes, client: Address) -> None:
        if self.dropping:
            self.dropped += 1
            return
        upstream = self._upstreams.get(client)
        if upstream is None:
            upstream = self._upstreams[client] = _Upstream(self, client)
            task = asyncio.get_running_loop().create_task(self._open(upstream, data))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        if upstream.transport is None:
            return  # still opening; QUIC retransmits what is lost here
        self.forwarded += 1
        upstream.transport.sendto(data)

    async def _open(self, upstream: _Upstream, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: upstream, remote_addr=self._target)
        assert upstream.transport is not None
        self.forwarded += 1
        upstream.transport.sendto(first)

    def _to_client(self, data: bytes, client: Address) -> None:
        if self.dropping or self._listener is None:
            self.dropped += 1
            return
        self.forwarded += 1
        self._listener.sendto(data, client)

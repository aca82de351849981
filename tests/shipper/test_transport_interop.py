"""Interoperability: both transports through Caddy 2.6 (quic-go), an independent HTTP/3 stack.

Caddy terminates TLS/QUIC with its internal CA and reverse-proxies to the reference
receiver's plain HTTP port; its JSON access log records the protocol each request arrived on.
Skipped when ``caddy`` is not installed (``scripts/install-system-packages`` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import transport_support as support

from kk_receiver.testing import ReceiverProcess, wait_until
from kk_shipper.transport import H1Transport, H3Transport
from kk_shipper.types import Protocol, TlsSettings

run, new_ids, logs_request = support.run, support.new_ids, support.logs_request

pytestmark = pytest.mark.skipif(shutil.which("caddy") is None, reason=support.CADDY_MISSING)


@pytest.fixture(scope="module")
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess(license_key=support.LICENSE_KEY, https=False, h3=False) as process:
        yield process


@pytest.fixture(scope="module")
def caddy(receiver: ReceiverProcess) -> Iterator[Any]:
    port = int(str(receiver.http_url).rsplit(":", 1)[1])
    with support.CaddyProxy(upstream_port=port) as proxy:
        yield proxy


def access_entry(caddy: Any, key: str) -> dict[str, Any]:
    """Caddy's access-log entry for the request carrying Idempotency-Key ``key``."""

    def find() -> dict[str, Any] | None:
        for entry in caddy.access_entries():
            headers = entry.get("request", {}).get("headers", {})
            if key in headers.get("Idempotency-Key", []):
                return entry
        return None

    return wait_until(find, timeout=5, message=f"access-log entry for {key}")


@pytest.mark.parametrize("protocol", [Protocol.H3, Protocol.H1])
def test_batch_through_caddy_arrives_over_the_expected_protocol(
    receiver: ReceiverProcess, caddy: Any, protocol: Protocol
) -> None:
    """Caddy accepts our request over HTTP/3 (or 1.1), logs that protocol, and the receiver
    stores the records."""
    ids = new_ids(40)
    key = f"interop-{ids[0]}"
    tls = TlsSettings(ca_file=str(caddy.root_ca))

    async def story() -> int:
        transport: H3Transport | H1Transport
        if protocol is Protocol.H3:
            transport = H3Transport(
                "127.0.0.1",
                caddy.port,
                server_name="127.0.0.1",
                tls=tls,
                handshake_timeout=3,
                max_streams=4,
            )
        else:
            transport = H1Transport(tls=tls, pool_size=2, connect_timeout=2)
        try:
            response = await transport.send(logs_request(caddy.url, ids, key=key), timeout=5)
        finally:
            await transport.aclose()
        assert response.protocol is protocol
        return response.status

    assert run(story()) == 200
    assert set(ids) <= set(receiver.record_ids("logs"))
    entry = access_entry(caddy, key)
    expected = "HTTP/3.0" if protocol is Protocol.H3 else "HTTP/1.1"
    assert entry["request"]["proto"] == expected
    assert (entry["request"]["method"], entry["request"]["uri"]) == ("POST", "/api/v1/logs")
    assert entry["status"] == 200

"""H3Transport against the reference receiver over real UDP sockets.

Failure scenarios use the receiver's fault script and a UDP relay (udp_relay.py) that can
drop every datagram, standing in for a firewall. Waits poll conditions or await futures;
nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import transport_support as support
from udp_relay import UdpRelay

from kk_receiver.testing import ReceiverProcess, wait_until_async
from kk_shipper.transport import H3Transport
from kk_shipper.types import Protocol, TlsSettings, TransportError

run, new_ids, logs_request = support.run, support.new_ids, support.logs_request
LICENSE_KEY = support.LICENSE_KEY


@pytest.fixture(scope="module")
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess(license_key=LICENSE_KEY) as process:
        yield process


@pytest.fixture
def rx(receiver: ReceiverProcess) -> Iterator[ReceiverProcess]:
    """The module's receiver, with no fault left over from another test."""
    receiver.clear_faults()
    yield receiver
    receiver.clear_faults()


def make_transport(
    receiver: ReceiverProcess,
    *,
    port: int | None = None,
    tls: TlsSettings | None = None,
    handshake_timeout: float = 3.0,
    max_streams: int = 16,
) -> H3Transport:
    return H3Transport(
        "127.0.0.1",
        port if port is not None else int(receiver.h3_port or 0),
        server_name="127.0.0.1",
        tls=tls if tls is not None else TlsSettings(ca_file=receiver.ca_file),
        handshake_timeout=handshake_timeout,
        max_streams=max_streams,
    )


def h3_requests(receiver: ReceiverProcess) -> int:
    return support.protocol_requests(receiver, "http/3")


class TestDelivery:
    def test_posts_a_gzip_batch_and_the_receiver_stores_it_over_http3(
        self, rx: ReceiverProcess
    ) -> None:
        """A batch POSTed over HTTP/3 gets 200, is stored, and is counted under http/3."""
        ids = new_ids(25)
        before = h3_requests(rx)

        async def story() -> None:
            transport = make_transport(rx)
            try:
                response = await transport.send(logs_request(str(rx.h3_url), ids), timeout=5)
            finally:
                await transport.aclose()
            assert response.status == 200
            assert response.protocol is Protocol.H3
            assert json.loads(response.body) == {"status": "success", "processed": 25}
            assert response.headers["content-type"] == "application/json"
            assert all(name == name.lower() for name in response.headers)

        run(story())
        assert h3_requests(rx) == before + 1
        stored = [r for r in rx.records("logs") if r["id"] in set(ids)]
        assert sorted(r["id"] for r in stored) == sorted(ids)
        assert {r["protocol"] for r in stored} == {"http/3"}
        last = rx.requests(limit=1)[-1]
        assert (last["path"], last["content_encoding"]) == ("/api/v1/logs", "gzip")

    def test_concurrent_sends_share_one_connection(self, rx: ReceiverProcess) -> None:
        """Eight concurrent sends all succeed over a single QUIC handshake."""
        batches = [new_ids(3) for _ in range(8)]

        async def story() -> None:
            transport = make_transport(rx, max_streams=8)
            try:
                responses = await asyncio.gather(
                    *(transport.send(logs_request(str(rx.h3_url), b), timeout=5) for b in batches)
                )
                assert [r.status for r in responses] == [200] * 8
                assert transport.handshakes == 1
                again = await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=5)
                assert again.status == 200
                assert transport.handshakes == 1
            finally:
                await transport.aclose()

        run(story())

    def test_max_streams_holds_extra_requests_back(self, rx: ReceiverProcess) -> None:
        """With max_streams=2, requests 3 and 4 reach the receiver only after 1 and 2 end."""
        rx.set_faults([{"delay_s": 1.0, "protocol": "http/3"}] * 2)
        keys = [f"slot-{support.new_ids(1)[0]}-{i}" for i in range(4)]

        async def story() -> None:
            transport = make_transport(rx, max_streams=2)
            try:
                responses = await asyncio.gather(
                    *(
                        transport.send(logs_request(str(rx.h3_url), new_ids(1), key=k), timeout=5)
                        for k in keys
                    )
                )
            finally:
                await transport.aclose()
            assert [r.status for r in responses] == [200] * 4
            assert transport.peak_in_flight == 2
            assert transport.handshakes == 1

        run(story())
        arrived = {r["idempotency_key"]: r["received_at"] for r in rx.requests(limit=20)}
        first = sorted(arrived[k] for k in keys)
        # The first two held their slots for the 1 s delay; unlimited, all four arrive at once.
        assert first[2] - first[1] >= 0.9


class TestFailures:
    def test_blocked_udp_fails_with_handshake_timeout_then_recovers(
        self, rx: ReceiverProcess
    ) -> None:
        """UDP dropped: handshake_timeout within the deadline; unblocked: the next send works."""

        async def story() -> None:
            async with UdpRelay(("127.0.0.1", int(rx.h3_port or 0))) as relay:
                transport = make_transport(rx, port=relay.port, handshake_timeout=1.0)
                try:
                    relay.dropping = True
                    started = time.monotonic()
                    with pytest.raises(TransportError) as failure:
                        await transport.send(logs_request(str(rx.h3_url), new_ids(2)), timeout=5)
                    elapsed = time.monotonic() - started
                    assert failure.value.reason == "handshake_timeout"
                    assert failure.value.protocol is Protocol.H3
                    assert 1.0 <= elapsed < 1.0 + 1.0
                    assert relay.dropped > 0 and relay.forwarded == 0

                    relay.dropping = False
                    response = await transport.send(
                        logs_request(str(rx.h3_url), new_ids(2)), timeout=5
                    )
                    assert response.status == 200
                    assert transport.handshakes == 1
                finally:
                    await transport.aclose()

        run(story())

    def test_path_blocked_after_handshake_fails_within_timeout_and_reconnects(
        self, rx: ReceiverProcess
    ) -> None:
        """A live connection whose path goes dark fails the request in time, then is replaced."""

        async def story() -> None:
            async with UdpRelay(("127.0.0.1", int(rx.h3_port or 0))) as relay:
                transport = make_transport(rx, port=relay.port)
                try:
                    first = await transport.send(
                        logs_request(str(rx.h3_url), new_ids(1)), timeout=5
                    )
                    assert first.status == 200

                    relay.dropping = True
                    started = time.monotonic()
                    with pytest.raises(TransportError) as failure:
                        await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=1)
                    assert failure.value.reason == "request_timeout"
                    assert time.monotonic() - started < 1.0 + 0.5

                    relay.dropping = False
                    again = await transport.send(
                        logs_request(str(rx.h3_url), new_ids(1)), timeout=5
                    )
                    assert again.status == 200
                    # The dark connection was dropped rather than waited on until idle timeout.
                    assert transport.handshakes == 2
                finally:
                    await transport.aclose()

        run(story())

    def test_connection_closed_mid_request_fails_every_pending_request_promptly(
        self, rx: ReceiverProcess
    ) -> None:
        """The receiver drops the connection: all in-flight requests fail at once; next works."""
        rx.set_faults([{"delay_s": 8, "protocol": "http/3"}] * 3)

        async def story() -> None:
            transport = make_transport(rx)
            before = h3_requests(rx)
            try:
                started = time.monotonic()
                held = [
                    asyncio.create_task(
                        transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=10)
                    )
                    for _ in range(3)
                ]
                # The three held requests have reached the receiver (their answers wait 8 s).
                await wait_until_async(
                    lambda: asyncio.to_thread(lambda: h3_requests(rx) >= before + 3), timeout=5
                )
                rx.set_faults([{"close": True, "protocol": "http/3"}])
                with pytest.raises(TransportError) as closing:
                    await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=10)
                outcomes = await asyncio.gather(*held, return_exceptions=True)
                elapsed = time.monotonic() - started

                assert closing.value.reason == "connection_lost"
                assert "fault injection" in closing.value.detail
                assert [getattr(o, "reason", o) for o in outcomes] == ["connection_lost"] * 3
                assert elapsed < 3.0  # the timeout is 10 s and the answers were 8 s away

                response = await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=5)
                assert response.status == 200
                assert transport.handshakes == 2
            finally:
                await transport.aclose()

        run(story())

    def test_slow_answer_fails_with_request_timeout_and_keeps_the_connection(
        self, rx: ReceiverProcess
    ) -> None:
        """An answer 3 s away with timeout=1: request_timeout after ~1 s; the link stays."""
        rx.set_faults([{"delay_s": 3, "protocol": "http/3"}])

        async def story() -> None:
            transport = make_transport(rx)
            try:
                started = time.monotonic()
                with pytest.raises(TransportError) as failure:
                    await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=1)
                elapsed = time.monotonic() - started
                assert failure.value.reason == "request_timeout"
                assert 1.0 <= elapsed < 1.5
                response = await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=5)
                assert response.status == 200
                assert transport.handshakes == 1
            finally:
                await transport.aclose()

        run(story())

    def test_waiting_for_a_stream_slot_counts_against_the_timeout(
        self, rx: ReceiverProcess
    ) -> None:
        """With the only slot busy, a second request times out while waiting for it."""
        rx.set_faults([{"delay_s": 3, "protocol": "http/3"}])

        async def story() -> None:
            transport = make_transport(rx, max_streams=1)
            try:
                busy = asyncio.create_task(
                    transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=1.5)
                )
                await wait_until_async(lambda: transport.in_flight == 1, timeout=5)
                started = time.monotonic()
                with pytest.raises(TransportError) as failure:
                    await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=0.5)
                assert failure.value.reason == "request_timeout"
                assert "stream slot" in failure.value.detail
                assert time.monotonic() - started < 1.0
                with pytest.raises(TransportError):
                    await busy
            finally:
                await transport.aclose()

        run(story())

    @pytest.mark.parametrize("trust", ["system store", "another CA"])
    def test_untrusted_certificate_fails_with_tls_verify_failed(
        self, rx: ReceiverProcess, tmp_path: Path, trust: str
    ) -> None:
        """The receiver's CA is not trusted: tls_verify_failed, with the verifier's reason."""
        tls = TlsSettings()
        if trust == "another CA":
            from kk_receiver.certs import ensure_certificates

            tls = TlsSettings(ca_file=str(ensure_certificates(tmp_path).ca_cert))

        async def story() -> None:
            transport = make_transport(rx, tls=tls)
            try:
                started = time.monotonic()
                with pytest.raises(TransportError) as failure:
                    await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=5)
                assert time.monotonic() - started < 2.0
            finally:
                await transport.aclose()
            assert failure.value.reason == "tls_verify_failed"
            assert "unable to get local issuer certificate" in failure.value.detail
            assert transport.handshakes == 0

        run(story())

    def test_unresolvable_host_fails_with_connect_failed(self) -> None:
        """A name that does not resolve is connect_failed, not a hang or a raw gaierror."""

        async def story() -> None:
            transport = H3Transport(
                "receiver.invalid",
                8443,
                server_name="receiver.invalid",
                tls=TlsSettings(),
                handshake_timeout=3,
                max_streams=4,
            )
            try:
                with pytest.raises(TransportError) as failure:
                    await transport.send(
                        logs_request("https://receiver.invalid:8443", new_ids(1)), timeout=3
                    )
            finally:
                await transport.aclose()
            assert failure.value.reason == "connect_failed"
            assert "receiver.invalid" in failure.value.detail

        run(story())

    def test_errors_never_contain_the_license_key(self, rx: ReceiverProcess) -> None:
        """Neither a TransportError nor its cause mentions the Authorization header."""

        async def story() -> list[TransportError]:
            errors: list[TransportError] = []
            untrusted = make_transport(rx, tls=TlsSettings())
            async with UdpRelay(("127.0.0.1", int(rx.h3_port or 0))) as relay:
                relay.dropping = True
                blocked = make_transport(rx, port=relay.port, handshake_timeout=0.5)
                for transport in (untrusted, blocked):
                    try:
                        await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=2)
                    except TransportError as exc:
                        errors.append(exc)
                    finally:
                        await transport.aclose()
            return errors

        errors = run(story())
        assert [e.reason for e in errors] == ["tls_verify_failed", "handshake_timeout"]
        for error in errors:
            for text in (str(error), repr(error), error.detail, str(error.__cause__)):
                assert LICENSE_KEY not in text
                assert "Bearer" not in text

    def test_aclose_fails_pending_requests_and_later_sends(self, rx: ReceiverProcess) -> None:
        """Closing the transport wakes a request in flight and refuses new ones."""
        rx.set_faults([{"delay_s": 5, "protocol": "http/3"}])

        async def story() -> None:
            transport = make_transport(rx)
            pending = asyncio.create_task(
                transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=10)
            )
            await wait_until_async(lambda: transport.in_flight == 1, timeout=5)
            await transport.aclose()
            with pytest.raises(TransportError) as woken:
                await pending
            with pytest.raises(TransportError) as refused:
                await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=1)
            assert (woken.value.reason, refused.value.reason) == ("closed", "closed")

        run(story())

    def test_aclose_during_a_handshake_fails_the_waiting_send_with_closed(
        self, rx: ReceiverProcess
    ) -> None:
        """A send waiting on a handshake that aclose() abandons gets closed, not CancelledError."""

        async def story() -> None:
            async with UdpRelay(("127.0.0.1", int(rx.h3_port or 0))) as relay:
                relay.dropping = True
                transport = make_transport(rx, port=relay.port, handshake_timeout=5)
                waiting = asyncio.create_task(
                    transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=5)
                )
                await wait_until_async(lambda: relay.dropped > 0, timeout=5)
                started = time.monotonic()
                await transport.aclose()
                with pytest.raises(TransportError) as failure:
                    await waiting
                assert failure.value.reason == "closed"
                assert time.monotonic() - started < 0.5

        run(story())

    def test_unencodable_header_is_a_protocol_error_that_names_no_value(
        self, rx: ReceiverProcess
    ) -> None:
        """A header value QPACK cannot carry fails as protocol_error without echoing it."""
        bad = logs_request(str(rx.h3_url), new_ids(1))
        bad = type(bad)(bad.url, (*bad.headers, ("X-API-Key", "s3cret-\u2603")), bad.body)

        async def story() -> TransportError:
            transport = make_transport(rx)
            try:
                with pytest.raises(TransportError) as failure:
                    await transport.send(bad, timeout=5)
                good = await transport.send(logs_request(str(rx.h3_url), new_ids(1)), timeout=5)
                assert good.status == 200
            finally:
                await transport.aclose()
            return failure.value

        error = run(story())
        assert error.reason == "protocol_error"
        assert "s3cret" not in str(error) and LICENSE_KEY not in str(error)

"""H1Transport (httpx, HTTP/1.1) against the reference receiver over real TCP sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import transport_support as support

from kk_receiver.testing import ReceiverProcess
from kk_shipper.transport import H1Transport
from kk_shipper.types import HttpRequest, Protocol, TlsSettings, TransportError

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


def make_transport(receiver: ReceiverProcess, tls: TlsSettings | None = None) -> H1Transport:
    return H1Transport(
        tls=tls if tls is not None else TlsSettings(ca_file=receiver.ca_file),
        pool_size=4,
        connect_timeout=2.0,
    )


async def send_once(
    transport: H1Transport, request: HttpRequest, timeout: float = 5.0
) -> TransportError:
    """Send, expecting a TransportError; close the transport either way."""
    try:
        with pytest.raises(TransportError) as failure:
            await transport.send(request, timeout=timeout)
    finally:
        await transport.aclose()
    assert failure.value.protocol is Protocol.H1
    return failure.value


class TestDelivery:
    @pytest.mark.parametrize("scheme", ["https", "http"])
    def test_posts_a_gzip_batch_counted_under_http11(
        self, rx: ReceiverProcess, scheme: str
    ) -> None:
        """A batch POSTed over HTTP/1.1 (TLS or plain) gets 200 and is stored."""
        ids = new_ids(12)
        base = rx.https_url if scheme == "https" else rx.http_url
        before = support.protocol_requests(rx, "http/1.1")

        async def story() -> None:
            transport = make_transport(rx)
            try:
                responses = await asyncio.gather(
                    transport.send(logs_request(str(base), ids[:6]), timeout=5),
                    transport.send(logs_request(str(base), ids[6:]), timeout=5),
                )
            finally:
                await transport.aclose()
            assert [r.status for r in responses] == [200, 200]
            assert {r.protocol for r in responses} == {Protocol.H1}
            assert json.loads(responses[0].body) == {"status": "success", "processed": 6}
            assert all(name == name.lower() for name in responses[0].headers)

        run(story())
        assert support.protocol_requests(rx, "http/1.1") == before + 2
        stored = {r["id"]: r["protocol"] for r in rx.records("logs")}
        assert {stored.get(i) for i in ids} == {"http/1.1"}

    def test_an_http_error_status_is_a_response_not_a_transport_error(
        self, rx: ReceiverProcess
    ) -> None:
        """A 503 with Retry-After comes back as an HttpResponse for the delivery logic."""
        rx.set_faults([{"status": 503, "retry_after": 7, "protocol": "http/1.1"}])

        async def story() -> None:
            transport = make_transport(rx)
            try:
                response = await transport.send(
                    logs_request(str(rx.https_url), new_ids(1)), timeout=5
                )
            finally:
                await transport.aclose()
            assert (response.status, response.headers["retry-after"]) == (503, "7")

        run(story())


class TestFailures:
    @pytest.mark.parametrize("trust", ["system store", "another CA"])
    def test_untrusted_certificate_fails_with_tls_verify_failed(
        self, rx: ReceiverProcess, tmp_path: Path, trust: str
    ) -> None:
        """The receiver's CA is not trusted: tls_verify_failed, with the verifier's reason."""
        tls = TlsSettings()
        if trust == "another CA":
            from kk_receiver.certs import ensure_certificates

            tls = TlsSettings(ca_file=str(ensure_certificates(tmp_path).ca_cert))
        error = run(send_once(make_transport(rx, tls), logs_request(str(rx.https_url), ["a"])))
        assert error.reason == "tls_verify_failed"
        assert "unable to get local issuer certificate" in error.detail

    def test_slow_answer_fails_with_request_timeout(self, rx: ReceiverProcess) -> None:
        """An answer 3 s away with timeout=1: request_timeout after about 1 s."""
        rx.set_faults([{"delay_s": 3, "protocol": "http/1.1"}])
        started = time.monotonic()
        error = run(send_once(make_transport(rx), logs_request(str(rx.https_url), new_ids(1)), 1.0))
        assert error.reason == "request_timeout"
        assert 1.0 <= time.monotonic() - started < 1.5

    def test_dropped_connection_fails_with_connection_lost(self, rx: ReceiverProcess) -> None:
        """The receiver closes the TCP connection without answering: connection_lost."""
        rx.set_faults([{"close": True, "protocol": "http/1.1"}])
        error = run(send_once(make_transport(rx), logs_request(str(rx.https_url), new_ids(1))))
        assert error.reason == "connection_lost"

    def test_refused_connection_fails_with_connect_failed(self) -> None:
        """Nothing listening on the port: connect_failed, promptly."""
        with support.closed_tcp_port() as port:
            started = time.monotonic()
            error = run(
                send_once(
                    make_transport_for_nothing(),
                    logs_request(f"http://127.0.0.1:{port}", new_ids(1)),
                )
            )
        assert error.reason == "connect_failed"
        assert time.monotonic() - started < 1.0

    def test_errors_never_contain_the_license_key(self, rx: ReceiverProcess) -> None:
        """Neither a TransportError nor its cause mentions the Authorization header."""
        errors = [
            run(
                send_once(make_transport(rx, TlsSettings()), logs_request(str(rx.https_url), ["a"]))
            )
        ]
        rx.set_faults([{"close": True, "protocol": "http/1.1"}])
        errors.append(run(send_once(make_transport(rx), logs_request(str(rx.https_url), ["b"]))))
        assert [e.reason for e in errors] == ["tls_verify_failed", "connection_lost"]
        for error in errors:
            for text in (str(error), repr(error), error.detail, str(error.__cause__)):
                assert LICENSE_KEY not in text
                assert "Bearer" not in text


def make_transport_for_nothing() -> H1Transport:
    return H1Transport(tls=TlsSettings(), pool_size=1, connect_timeout=2.0)


def test_unencodable_header_and_bad_url_are_protocol_errors() -> None:
    """Inputs httpx rejects become protocol_error TransportErrors that echo no header."""
    good = logs_request("http://127.0.0.1:9", new_ids(1))
    bad_header = HttpRequest(good.url, (*good.headers, ("X-API-Key", "s3cret-\u2603")), good.body)
    bad_port = HttpRequest("http://127.0.0.1:99999/api/v1/logs", good.headers, good.body)
    bad_scheme = HttpRequest("ftp://127.0.0.1/api/v1/logs", good.headers, good.body)
    errors = [
        run(send_once(make_transport_for_nothing(), request))
        for request in (bad_header, bad_port, bad_scheme)
    ]
    assert [e.reason for e in errors] == ["protocol_error"] * 3
    for error in errors:
        assert "s3cret" not in str(error) and LICENSE_KEY not in str(error)

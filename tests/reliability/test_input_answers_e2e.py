"""A receiver that answers badly: huge bodies (with and without a length, on a 200 and on
a 503), binary garbage, truncated JSON, a count that is not a number, a Content-Length
that lies, an empty 200. The shipper process survives each, says why in its log, reads no
more of a huge body than it needs, and keeps the batch until a real receiver stores it:
every record arrives exactly once.
"""

from __future__ import annotations

import pytest

from kk_receiver.testing import wait_until
from kk_shipper.transport import H1Transport, H3Transport
from kk_shipper.types import MAX_RESPONSE_BODY_BYTES, TlsSettings, TransportError
from tests.reliability.input_answers import Answer, BadAnswers
from tests.reliability.input_pod import (
    Producer,
    ReceiverProcess,
    ShipperProcess,
    log_records,
    transport_support,
)

MiB = 1024 * 1024
HUGE = 64 * MiB


def script() -> list[Answer]:
    return [
        Answer("huge_200", body_bytes=HUGE),
        Answer("huge_503_chunked", status=503, body_bytes=HUGE, chunked=True),
        Answer("garbage_200", body=b"\xff\xfe\x00\x01 not json \x80"),
        Answer("truncated_json_200", body=b'{"status": "success", "processed": '),
        Answer("count_not_a_number", body=b'{"status": "success", "processed": "all"}'),
        Answer("length_lies", body=b'{"status":', declared_length=1000),
        Answer("empty_200"),
    ]


def test_bad_answers_keep_the_batch_until_a_real_receiver_stores_it() -> None:
    records = log_records(50, file_identity="answers")
    with ReceiverProcess() as receiver, BadAnswers(receiver.http_url, script()) as front:
        shipper = ShipperProcess(
            receiver,
            url=front.url,
            output={
                "type": "http",
                "batch_size": 50,
                "max_in_flight": 1,
                "request_timeout": "10s",
                "retry": {"initial_backoff": "100ms", "max_backoff": "500ms"},
            },
        )
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(records)
            wait_until(
                lambda: receiver.stats()["unique_ids"] == 50, timeout=60, message=shipper.log_tail()
            )
            assert shipper.process is not None and shipper.process.poll() is None
        stats = receiver.stats()
        assert (stats["duplicates"], stats["rejected"]) == (0, 0)
        assert sorted(receiver.record_ids("logs")) == sorted(r["id"] for r in records)
        answered = {answer.name: answer for answer in front.answered}
        assert list(answered) == [answer.name for answer in script()]
        # A huge body is refused after at most 1 MiB: what else was written sat in socket
        # buffers when the shipper hung up (before: all 64 MiB, held in memory, twice).
        for name in ("huge_200", "huge_503_chunked"):
            assert answered[name].written < 16 * MiB, (name, answered[name].written)

    # Said in the log: the output went down (a warning naming the cause) and came back,
    # and each bad answer's own reason was recorded when its retry was scheduled.
    down = shipper.events("output_down")
    assert down and down[0]["level"] == "warn" and down[0]["cause"], down
    assert shipper.events("output_recovered")
    retried = {event["reason"] for event in shipper.events("retry_scheduled")}
    assert {
        "transport_protocol_error",  # the huge bodies
        "unexpected_success_body",  # garbage, truncated JSON, a count that is no count, empty
        "transport_connection_lost",  # the Content-Length that lied
    } <= retried, retried
    assert "Traceback" not in shipper.log_path.read_text(errors="replace")


@pytest.mark.parametrize("protocol", ["http/1.1", "http/3"])
def test_each_transport_refuses_an_answer_past_its_limit_and_goes_on(protocol: str) -> None:
    """The regression test of the limit, per transport, against the reference receiver's
    canned answer: 2 MiB of valid JSON is refused as a protocol_error, and the next
    request on the same transport is answered normally."""
    padding = "x" * (2 * MAX_RESPONSE_BODY_BYTES)
    steps = [{"status": 200, "body": {"status": "success", "processed": 1, "pad": padding}}]
    with ReceiverProcess(license_key=transport_support.LICENSE_KEY, faults={"steps": steps}) as rx:
        tls = TlsSettings(ca_file=rx.ca_file)
        if protocol == "http/3":
            transport = H3Transport(
                "127.0.0.1", int(rx.h3_port or 0), server_name="127.0.0.1", tls=tls,
                handshake_timeout=3, max_streams=4,
            )  # fmt: skip
            url = rx.h3_url
        else:
            transport = H1Transport(tls=tls, pool_size=1, connect_timeout=3)
            url = rx.https_url

        async def story() -> tuple[TransportError, int]:
            try:
                with pytest.raises(TransportError) as refused:
                    await transport.send(
                        transport_support.logs_request(url, transport_support.new_ids(1)),
                        timeout=10,
                    )
                after = await transport.send(
                    transport_support.logs_request(url, transport_support.new_ids(1)), timeout=10
                )
            finally:
                await transport.aclose()
            return refused.value, after.status

        refused, status_after = transport_support.run(story())
    assert refused.reason == "protocol_error"
    assert "past 1,048,576 bytes" in refused.detail
    assert status_after == 200

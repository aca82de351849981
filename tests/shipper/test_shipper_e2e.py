"""The shipper as a real process: producers over ZeroMQ, the reference receiver over
HTTP/3 and HTTP/1.1, the durable queue on disk, SIGKILL and restarts."""

from __future__ import annotations

import pytest
from e2e_support import Producer, ShipperProcess, log_records

from kk_receiver.testing import ReceiverProcess, wait_until


@pytest.fixture
def receiver():
    with ReceiverProcess() as running:
        yield running


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize(("output_type", "protocol"), [("http3", "http/3"), ("http", "http/1.1")])
def test_records_arrive_over_each_protocol_with_each_compression(
    receiver: ReceiverProcess, compression: str, output_type: str, protocol: str
) -> None:
    records = log_records(250)
    output = {"compression": compression, "batch_size": 100, "type": output_type}
    other = "http/1.1" if protocol == "http/3" else "http/3"
    with (
        ShipperProcess(receiver, output=output) as shipper,
        Producer(shipper.endpoint) as producer,
    ):
        for start in range(0, 250, 50):
            producer.send(records[start : start + 50])
        wait_until(lambda: len(producer.acked) == 5, timeout=20, message="acks")
        wait_until(
            lambda: receiver.stats()["unique_ids"] == 250,
            timeout=20,
            message=f"receiver stats {receiver.stats()}",
        )
    stats = receiver.stats()
    assert stats["duplicates"] == 0
    assert stats["by_protocol"][protocol]["records_received"] == 250
    assert stats["by_protocol"][other]["requests"] == 0
    assert sorted(receiver.record_ids("logs")) == sorted(r["id"] for r in records)
    encodings = {r["content_encoding"] for r in receiver.requests()}
    assert encodings == {None if compression == "none" else compression}


def test_plain_http_url_uses_http11_only(receiver: ReceiverProcess) -> None:
    with (
        ShipperProcess(receiver, url=receiver.http_url) as shipper,
        Producer(shipper.endpoint) as producer,
    ):
        producer.send(log_records(20))
        wait_until(lambda: receiver.stats()["unique_ids"] == 20, timeout=20)
        assert shipper.events("http3_disabled")
    assert receiver.stats()["by_protocol"]["http/3"]["requests"] == 0


def test_shipper_killed_mid_delivery_loses_nothing_and_resends_at_most_in_flight(
    receiver: ReceiverProcess,
) -> None:
    """Requests are held by the receiver when the shipper is SIGKILLed; after the restart
    every record is stored once, and only records that were in flight were re-sent."""
    batch_size, in_flight = 50, 2
    receiver.set_faults([{"delay_s": 1.0, "times": 4}])
    records = log_records(600)
    with (
        ShipperProcess(
            receiver, output={"batch_size": batch_size, "max_in_flight": in_flight}
        ) as shipper,
        Producer(shipper.endpoint) as producer,
    ):
        for start in range(0, 600, 100):
            producer.send(records[start : start + 100])
        wait_until(lambda: len(producer.acked) == 6, timeout=20, message="all batches stored")
        wait_until(lambda: receiver.stats()["requests"] >= 2, timeout=20)
        shipper.kill()
        receiver.clear_faults()
        shipper.start()
        wait_until(
            lambda: receiver.stats()["unique_ids"] == 600,
            timeout=30,
            message=f"{receiver.stats()}\n{shipper.log_tail()}",
        )
    stats = receiver.stats()
    assert sorted(receiver.record_ids("logs")) == sorted(r["id"] for r in records)
    assert stats["duplicates"] <= batch_size * in_flight

"""The shipper process against a receiver whose certificate is expired or issued for
another host (signed by the CA the shipper trusts, so only that one defect is tested):
every attempt over HTTP/3 and HTTP/1.1 is refused with a clear tls_verify_failed error,
nothing reaches the receiver, the records stay queued, and once the receiver serves a good
certificate they arrive exactly once, without restarting the shipper.

A certificate from an unknown CA is tests/shipper/test_shipper_delivery_e2e.py's
``test_wrong_ca_keeps_records_queued_and_says_why_in_logs_and_health``.
"""

from __future__ import annotations

import datetime
import re

import pytest

from kk_receiver.testing import wait_until
from tests.reliability.input_pod import Producer, ShipperProcess, log_records
from tests.reliability.security_receiver import CertificateReceiver, issue_server_certificate

RECEIVER_HOSTS = ["localhost", "127.0.0.1", "::1"]
NOW = datetime.datetime.now(datetime.UTC)
CASES = {
    # case: (hosts named, issued at, what each protocol's error says: a regex)
    "expired": (RECEIVER_HOSTS, NOW - datetime.timedelta(days=400), "expired"),
    "other_host": (["other.example"], NOW, r"mismatch|doesn't match"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_certificate_is_refused_and_the_records_wait_for_a_good_one(case: str) -> None:
    hosts, issued, complaint = CASES[case]
    with CertificateReceiver() as receiver:
        bad = issue_server_certificate(receiver.data_dir / "tls", case, hosts, issued=issued)
        receiver.serve(bad)
        records = log_records(30, file_identity=case)
        shipper = ShipperProcess(receiver)  # https:// URL, the receiver's CA, HTTP/3 first
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(records)
            wait_until(lambda: len(producer.acked) == 1, timeout=15)  # durably queued

            def refusals() -> dict[str, str]:
                return {
                    event["protocol"]: event["detail"]
                    for event in shipper.events("transport_error")
                    if event["reason"] == "tls_verify_failed"
                }

            wait_until(
                lambda: set(refusals()) == {"http/3", "http/1.1"},
                timeout=30,
                message=shipper.log_tail(),
            )
            other_reasons = {e["reason"] for e in shipper.events("transport_error")}
            assert other_reasons == {"tls_verify_failed"}, other_reasons
            for protocol, detail in refusals().items():
                assert re.search(complaint, detail, re.IGNORECASE), (protocol, detail)
            assert receiver.stats()["requests"] == 0
            down = shipper.events("output_down")
            assert down and down[0]["level"] in {"warn", "error"}, down

            receiver.serve(None)  # the receiver's own, good certificate, same ports
            wait_until(
                lambda: receiver.stats()["unique_ids"] == 30,
                timeout=60,
                message=shipper.log_tail(),
            )
            assert shipper.process is not None and shipper.process.poll() is None
        assert sorted(receiver.record_ids("logs")) == sorted(r["id"] for r in records)
        assert receiver.stats()["duplicates"] == 0

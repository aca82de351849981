"""End-to-end delivery behaviour of the shipper process: protocol fallback and return,
certificate failures, receiver answers from the contract's table, a full queue, poison
records and a graceful stop."""

from __future__ import annotations

import sqlite3
import time

import pytest
from e2e_support import (
    Producer,
    RelayThread,
    ShipperProcess,
    TelemetryListener,
    free_udp_port,
    log_records,
)

from kk_receiver.testing import ReceiverProcess, wait_until


def test_blocked_udp_falls_back_within_two_seconds_and_returns_to_http3() -> None:
    """HTTP/3 goes through a UDP relay that the test cuts and restores; HTTP/1.1 goes to
    the receiver's TCP port (the explicit fallback URL)."""
    h3_port = free_udp_port()
    with ReceiverProcess(extra_args=["--h3-port", str(h3_port)]) as receiver:
        relay = RelayThread(h3_port)
        try:
            relay.block()
            shipper = ShipperProcess(
                receiver,
                url=f"https://127.0.0.1:{relay.port}",
                output={
                    "fallback_url": receiver.https_url,
                    "http3": {"handshake_timeout": "1s", "probe_interval": "2s"},
                },
            )
            with shipper, Producer(shipper.endpoint) as producer:
                first = log_records(40, file_identity="before")
                producer.send(first)
                sent_at = time.monotonic()
                wait_until(lambda: receiver.stats()["unique_ids"] == 40, timeout=10)
                assert time.monotonic() - sent_at < 2.0
                assert receiver.stats()["by_protocol"]["http/1.1"]["records_received"] == 40
                # Logged once the shipper has read the HTTP/1.1 answer (QUIC blocked, not down).
                changed = wait_until(lambda: shipper.events("protocol_changed"), timeout=10)
                assert changed[0]["reason"] == "handshake_timeout"

                relay.unblock()
                second = log_records(40, file_identity="after")

                def back_on_http3() -> bool:
                    producer.send(log_records(1, file_identity=f"tick-{time.monotonic()}"))
                    return receiver.stats()["by_protocol"]["http/3"]["requests"] > 0

                wait_until(back_on_http3, timeout=15, interval=0.5)
                producer.send(second)
                wait_until(
                    lambda: set(r["id"] for r in second) <= set(receiver.record_ids("logs")),
                    timeout=10,
                )
                changes = [(e["old"], e["new"]) for e in shipper.events("protocol_changed")]
                assert changes[:2] == [("http/3", "http/1.1"), ("http/1.1", "http/3")]
        finally:
            relay.close()
        stats = receiver.stats()
        assert stats["duplicates"] == 0
        assert stats["unique_ids"] == stats["records_received"]


def test_wrong_ca_keeps_records_queued_and_says_why_in_logs_and_health() -> None:
    with ReceiverProcess() as receiver, ReceiverProcess() as other:
        records = log_records(30)
        shipper = ShipperProcess(receiver, output={"tls": {"ca_file": str(other.ca_file)}})
        health = TelemetryListener(shipper.ipc_dir)
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(records)
            wait_until(lambda: len(producer.acked) == 1, timeout=10)
            wait_until(lambda: len(shipper.events("transport_error")) >= 2, timeout=15)
            reasons = {e["reason"] for e in shipper.events("transport_error")}
            assert reasons == {"tls_verify_failed"}
            assert receiver.stats()["requests"] == 0
            wait_until(
                lambda: health.latest is not None and not health.latest.status.ready, timeout=10
            )
            assert any("tls_verify_failed" in p for p in health.latest.status.problems)
            assert health.sample("killkrill_agent_queued_records", type="logs") == 30
            health.close()
            assert shipper.terminate() == 0
            # Same state directory, right CA: everything queued is delivered.
            shipper.config["logs"]["output"]["tls"]["ca_file"] = str(receiver.ca_file)
            shipper.start()
            wait_until(lambda: receiver.stats()["unique_ids"] == 30, timeout=15)
        assert receiver.stats()["duplicates"] == 0


def test_transient_answers_are_retried_and_413_is_split() -> None:
    """503 and 429 with Retry-After, then 413: all records arrive once, retries of one
    batch carry the same Idempotency-Key, and Retry-After was waited for."""
    faults = [
        {"status": 503, "retry_after": 1},
        {"status": 429, "retry_after": 1},
        {"status": 413},
    ]
    with ReceiverProcess(faults={"steps": faults}) as receiver:
        records = log_records(20)
        shipper = ShipperProcess(receiver, output={"batch_size": 20, "max_in_flight": 1})
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(records)
            wait_until(lambda: receiver.stats()["unique_ids"] == 20, timeout=20)
        requests = receiver.requests()
        statuses = [r["status"] for r in requests]
        assert statuses[:3] == [503, 429, 413]
        assert statuses[3:] == [200, 200]
        assert len({r["idempotency_key"] for r in requests[:3]}) == 1
        assert {r["records"] for r in requests[3:]} == {10}
        assert requests[1]["received_at"] - requests[0]["received_at"] >= 0.95
        assert requests[2]["received_at"] - requests[1]["received_at"] >= 0.95
        assert receiver.stats()["duplicates"] == 0


def test_bad_credentials_are_not_retried_in_a_storm_and_nothing_is_dropped() -> None:
    with ReceiverProcess(license_key="PENG-OTHR-KEY0-0000-0000-0001") as receiver:
        shipper = ShipperProcess(receiver)
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(log_records(10))
            wait_until(lambda: shipper.events("output_paused"), timeout=10)
            time.sleep(2)  # a storm would show as many requests in this window
            assert receiver.stats()["requests"] <= 2
            assert shipper.events("output_paused")[0]["status"] == 401
            listed = shipper.cli("dead-letters")
            assert listed.returncode == 0
            assert listed.stdout == ""


def test_single_record_reply_to_a_batch_is_a_contract_mismatch() -> None:
    """Today's receivers take any JSON object as one record (they decode no gzip, so the
    batch goes uncompressed here) and answer with the single-record shape."""
    with ReceiverProcess(mode="single") as receiver:
        shipper = ShipperProcess(receiver, output={"compression": "none"})
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(log_records(5))
            wait_until(lambda: shipper.events("receiver_contract_mismatch"), timeout=10)
        event = shipper.events("receiver_contract_mismatch")[0]
        assert "single" in event["suggestion"]


def test_single_mode_sends_one_uncompressed_record_per_request() -> None:
    with ReceiverProcess(mode="single") as receiver:
        shipper = ShipperProcess(receiver, output={"mode": "single"})
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(log_records(6))
            wait_until(lambda: receiver.stats()["records_received"] == 6, timeout=10)
        assert {r["content_encoding"] for r in receiver.requests()} == {None}
        assert receiver.stats()["requests"] == 6


def test_full_queue_holds_batches_and_acknowledges_them_as_soon_as_space_returns() -> None:
    """Capacity for about 2 batches; the receiver answers 503 for a while. The producer's
    later batches are not acknowledged (it keeps them). The producer would re-send only
    after a minute: the acknowledgements that follow the receiver's recovery come from
    the shipper storing the batches it held, within seconds."""
    steps = [{"status": 503, "times": 1000}]
    with ReceiverProcess(faults={"steps": steps}) as receiver:
        shipper = ShipperProcess(
            receiver,
            shipper={"queue_max_size": "80KB"},
            output={"batch_size": 100, "retry": {"initial_backoff": "0.2s", "max_backoff": "0.5s"}},
        )
        batches = [log_records(100, file_identity=f"f{n}") for n in range(5)]
        with (
            shipper,
            Producer(shipper.endpoint, resend_after_s=60, max_resend_after_s=60) as producer,
        ):
            for batch in batches:
                producer.send_soon(batch)
            wait_until(lambda: shipper.events("queue_full"), timeout=15)
            acked_while_full = len(producer.acked)
            assert acked_while_full < 5
            assert producer.pending == 5 - acked_while_full
            resent_before = producer.resent
            receiver.clear_faults()
            recovered = time.monotonic()
            wait_until(lambda: producer.pending == 0, timeout=30, message=shipper.log_tail())
            # Far sooner than the producer's own re-send (60 s): the shipper drove it.
            assert time.monotonic() - recovered < 20
            assert producer.resent == resent_before
            wait_until(lambda: receiver.stats()["unique_ids"] == 500, timeout=30)
        assert receiver.stats()["duplicates"] == 0
        assert shipper.events("queue_accepting_again")


def test_a_queue_locked_by_another_process_for_7_s_is_waited_out() -> None:
    """An operator's sqlite3 shell (or a replay) holds the queue's write lock for longer than
    the busy timeout (5 s) while a delivery's answer comes back (its completion must wait)
    and a new batch arrives (it must be held): the shipper waits, says so, and carries on;
    nothing is lost or sent twice."""
    # The receiver stores the first request at once and answers it 2 s later: the lock is
    # taken in between, so the shipper's completion of that batch meets it.
    with ReceiverProcess(faults={"steps": [{"delay_s": 2.0}]}) as receiver:
        shipper = ShipperProcess(receiver, output={"batch_size": 50})
        with (
            shipper,
            Producer(shipper.endpoint, resend_after_s=60, max_resend_after_s=60) as producer,
        ):
            producer.send(log_records(50, file_identity="before"))
            wait_until(lambda: receiver.stats()["unique_ids"] == 50, timeout=30)
            queue_file = shipper.state_dir / "shipper" / "queue.db"
            holder = sqlite3.connect(queue_file, isolation_level=None, timeout=30)
            holder.execute("BEGIN IMMEDIATE")
            locked_at = time.monotonic()
            try:
                producer.send_soon(log_records(50, file_identity="during"))
                wait_until(
                    lambda: shipper.events("queue_busy") and shipper.events("queue_write_waiting"),
                    timeout=30,
                    message=shipper.log_tail(),
                )
                # Holding the lock for 7 s is the scenario itself, not a wait for something.
                time.sleep(max(0.0, locked_at + 7 - time.monotonic()))
                assert shipper.process is not None and shipper.process.poll() is None
            finally:
                holder.execute("COMMIT")
                holder.close()
            wait_until(lambda: producer.pending == 0, timeout=30, message=shipper.log_tail())
            wait_until(lambda: receiver.stats()["unique_ids"] == 100, timeout=30)
            wait_until(lambda: shipper.events("queue_write_resumed"), timeout=30)
        assert receiver.stats()["duplicates"] == 0
        assert shipper.events("queue_accepting_again")


def test_a_2xx_that_is_not_the_receivers_answer_deletes_nothing() -> None:
    """A proxy's page and a "processed: 0" answer come back with 200: the batch is kept and
    retried (and the reason logged) until the receiver really stores it."""
    steps = [
        {"status": 200, "body": "<html><body>Welcome to nginx</body></html>", "times": 2},
        {"status": 200, "body": {"status": "success", "processed": 0}, "times": 2},
    ]
    with ReceiverProcess(faults={"steps": steps}) as receiver:
        shipper = ShipperProcess(
            receiver,
            output={
                "batch_size": 50,
                "retry": {"initial_backoff": "100ms", "max_backoff": "300ms"},
            },
        )
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(log_records(50))
            wait_until(lambda: receiver.stats()["unique_ids"] == 50, timeout=30)
        assert receiver.stats()["duplicates"] == 0
        text = shipper.log_tail(500)
        assert "unexpected_success_body" in text
        assert "partially_processed" in text
        assert not shipper.cli("dead-letters").stdout.strip()


def test_a_poison_record_is_dead_lettered_and_every_other_record_arrives() -> None:
    with ReceiverProcess(faults={"steps": [], "poison": ["BOOM"]}) as receiver:
        records = log_records(16)
        records[5]["message"] = "this one says BOOM"
        shipper = ShipperProcess(
            receiver,
            output={
                "batch_size": 16,
                "retry": {"attempts_before_split": 1, "record_retry_budget": 2},
            },
        )
        health = TelemetryListener(shipper.ipc_dir)
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(records)
            wait_until(lambda: receiver.stats()["unique_ids"] == 15, timeout=30)
            wait_until(lambda: shipper.events("records_dead_lettered"), timeout=30)
            # Shown to the operator, but delivery goes on: still ready.
            wait_until(
                lambda: health.sample("killkrill_agent_dead_letters", type="logs") == 1, timeout=10
            )
            assert health.latest.status.ready
            assert any("dead-lettered" in p for p in health.latest.status.problems)
            health.close()
        assert records[5]["id"] not in receiver.record_ids("logs")
        listed = [line for line in shipper.cli("dead-letters").stdout.splitlines() if line]
        assert len(listed) == 1
        assert '"this one says BOOM"' in listed[0]
        receiver.set_faults([], poison=[])
        assert "replayed 1" in shipper.cli("replay").stdout
        shipper.start()
        wait_until(lambda: receiver.stats()["unique_ids"] == 16, timeout=20)
        shipper.close()


@pytest.mark.parametrize("budget", ["5s"])
def test_sigterm_finishes_in_flight_requests_and_keeps_the_rest(budget: str) -> None:
    with ReceiverProcess(faults={"steps": [{"delay_s": 1.0, "times": 2}]}) as receiver:
        shipper = ShipperProcess(
            receiver,
            output={"batch_size": 10, "max_in_flight": 1},
            shipper={"drain_timeout": budget},
        )
        with shipper, Producer(shipper.endpoint) as producer:
            producer.send(log_records(10))
            wait_until(lambda: receiver.stats()["requests"] >= 1, timeout=10)
            started = time.monotonic()
            assert shipper.terminate() == 0
            assert time.monotonic() - started < 5.0
        assert receiver.stats()["unique_ids"] == 10
        assert shipper.events("shipper_stopped")

"""The receiver as a real process: HTTP/1.1 (plain and TLS) and HTTP/3 on the wire.

Every wait polls a condition with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import gzip
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard

from kk_receiver.testing import (
    H3ConnectionLost,
    H3HandshakeFailed,
    ReceiverProcess,
    h3_post_sync,
    wait_until,
)

LICENSE_KEY = "PENG-1111-2222-3333-4444-5555"
API_KEY = "receiver-test-api-key"
ENCODINGS = ["gzip", "zstd", "identity"]
TRANSPORTS = ["http/3", "https/1.1", "http/1.1"]


def log_batch(ids: list[str]) -> dict[str, Any]:
    return {
        "source": "cluster-a/node-1",
        "logs": [
            {
                "id": i,
                "timestamp": "2026-11-26T10:00:00.123456789Z",
                "log_level": "info",
                "message": f"line {i}",
                "service_name": "checkout",
                "labels": {"k8s_namespace": "shop"},
                "tags": [],
            }
            for i in ids
        ],
    }


def encode(document: Any, encoding: str) -> bytes:
    raw = json.dumps(document).encode()
    if encoding == "gzip":
        return gzip.compress(raw)
    if encoding == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def headers_for(encoding: str, **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", "content-encoding": encoding, **extra}


def send(
    receiver: ReceiverProcess,
    transport: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """POST over one transport; returns (status, headers, body)."""
    if transport == "http/3":
        assert receiver.h3_url is not None
        response = h3_post_sync(receiver.h3_url + path, body, headers, receiver.ca_file, timeout)
        return response.status, response.headers, response.body
    base = receiver.https_url if transport == "https/1.1" else receiver.http_url
    with httpx.Client(verify=receiver.ssl_context(), trust_env=False, timeout=timeout) as client:
        reply = client.post(f"{base}{path}", content=body, headers=headers)
        return reply.status_code, dict(reply.headers), reply.content


def new_ids(count: int) -> list[str]:
    prefix = uuid.uuid4().hex[:8]
    return [f"{prefix}-{n}" for n in range(count)]


@pytest.fixture(scope="module")
def receiver() -> Iterator[ReceiverProcess]:
    with ReceiverProcess() as process:
        yield process


@pytest.fixture
def shared(receiver: ReceiverProcess) -> Iterator[ReceiverProcess]:
    """The module's receiver, with any fault script removed afterwards."""
    yield receiver
    receiver.clear_faults()


class TestTransports:
    @pytest.mark.parametrize("encoding", ENCODINGS)
    @pytest.mark.parametrize("transport", TRANSPORTS)
    def test_batch_is_stored_over_each_transport(
        self, shared: ReceiverProcess, transport: str, encoding: str
    ) -> None:
        """A batch over HTTP/3, HTTP/1.1+TLS and plain HTTP, in each encoding, is stored."""
        protocol = "http/3" if transport == "http/3" else "http/1.1"
        before = shared.stats()["by_protocol"][protocol]["logs"]
        ids = new_ids(3)
        status, _, body = send(
            shared,
            transport,
            "/api/v1/logs",
            encode(log_batch(ids), encoding),
            headers_for(encoding),
        )
        assert (status, json.loads(body)) == (200, {"status": "success", "processed": 3})
        after = shared.stats()["by_protocol"][protocol]["logs"]
        assert after["unique_ids"] - before["unique_ids"] == 3
        assert after["requests"] - before["requests"] == 1
        stored = [r for r in shared.records("logs") if r["id"] in ids]
        assert [(r["id"], r["protocol"]) for r in stored] == [(i, protocol) for i in ids]
        last = shared.requests(limit=1)[0]
        assert (last["protocol"], last["tls"], last["content_encoding"]) == (
            protocol,
            transport != "http/1.1",
            encoding,
        )

    def test_metrics_over_http3(self, shared: ReceiverProcess) -> None:
        """The metrics endpoint works over HTTP/3 too."""
        [metric_id] = new_ids(1)
        document = {
            "source": "c/n",
            "metrics": [
                {
                    "id": metric_id,
                    "name": "up",
                    "type": "gauge",
                    "value": 1,
                    "labels": {},
                    "timestamp": "2026-11-26T10:00:00Z",
                }
            ],
        }
        status, _, body = send(
            shared, "http/3", "/api/v1/metrics", encode(document, "gzip"), headers_for("gzip")
        )
        assert (status, json.loads(body)["processed"]) == (200, 1)
        assert metric_id in shared.record_ids("metrics")

    def test_same_batch_over_other_protocol_is_duplicate(self, shared: ReceiverProcess) -> None:
        """A batch re-sent over HTTP/1.1 after HTTP/3 is acknowledged, counted as duplicates,
        stored once, and both requests carry the same Idempotency-Key."""
        ids = new_ids(4)
        body = encode(log_batch(ids), "gzip")
        headers = headers_for("gzip", **{"idempotency-key": f"batch-{ids[0]}"})
        before = shared.stats()
        for transport in ("http/3", "https/1.1"):
            status, _, reply = send(shared, transport, "/api/v1/logs", body, headers)
            assert (status, json.loads(reply)["processed"]) == (200, 4)
        after = shared.stats()
        assert (
            after["by_protocol"]["http/3"]["unique_ids"]
            - before["by_protocol"]["http/3"]["unique_ids"]
            == 4
        )
        assert (
            after["by_protocol"]["http/1.1"]["duplicates"]
            - before["by_protocol"]["http/1.1"]["duplicates"]
            == 4
        )
        assert [i for i in shared.record_ids("logs") if i in ids] == ids
        keys = [(r["protocol"], r["idempotency_key"]) for r in shared.requests(limit=2)]
        assert keys == [("http/3", f"batch-{ids[0]}"), ("http/1.1", f"batch-{ids[0]}")]

    def test_chunked_body_and_keep_alive(self, shared: ReceiverProcess) -> None:
        """HTTP/1.1 chunked uploads work, and one connection serves several requests."""
        ids = new_ids(2)
        payload = encode(log_batch(ids), "identity")

        def chunks() -> Iterator[bytes]:
            yield payload[:10]
            yield payload[10:]

        with httpx.Client(trust_env=False, timeout=5) as client:
            first = client.post(
                f"{shared.http_url}/api/v1/logs",
                content=chunks(),
                headers={"content-type": "application/json"},
            )
            second = client.get(f"{shared.http_url}/api/v1/stats")
        assert first.status_code == 200 and first.json()["processed"] == 2
        assert second.status_code == 200
        entry = shared.requests(limit=1)[0]
        assert entry["body_bytes"] == len(payload)

    def test_https_advertises_http3(self, shared: ReceiverProcess) -> None:
        """HTTP/1.1-over-TLS answers carry Alt-Svc for HTTP/3 on the same port."""
        _, headers, _ = send(
            shared,
            "https/1.1",
            "/api/v1/logs",
            encode(log_batch(new_ids(1)), "gzip"),
            headers_for("gzip"),
        )
        assert headers["alt-svc"] == f'h3=":{shared.h3_port}"; ma=3600'
        assert shared.https_url and shared.https_url.endswith(f":{shared.h3_port}")

    def test_client_without_ca_is_refused_over_both_tls_protocols(
        self, shared: ReceiverProcess
    ) -> None:
        """Neither TLS listener is trusted by a client that lacks the receiver's CA."""
        body = encode(log_batch(new_ids(1)), "gzip")
        untrusting = ssl.create_default_context()  # system store only
        with (
            httpx.Client(verify=untrusting, trust_env=False, timeout=5) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.post(
                f"{shared.https_url}/api/v1/logs", content=body, headers=headers_for("gzip")
            )
        assert shared.h3_url is not None
        with pytest.raises(H3HandshakeFailed, match="issuer certificate"):
            h3_post_sync(shared.h3_url + "/api/v1/logs", body, headers_for("gzip"), None, 5)


class TestFaultsOverTheWire:
    def test_scripted_statuses_and_retry_after(self, shared: ReceiverProcess) -> None:
        """503 + Retry-After, 429, 413 and 401 arrive in order over both protocols."""
        shared.set_faults(
            [
                {"status": 503, "retry_after": 2},
                {"status": 429, "retry_after": 1},
                {"status": 413},
                {"status": 401},
            ]
        )
        body = encode(log_batch(new_ids(1)), "gzip")
        seen = []
        for transport in ("http/3", "https/1.1", "http/3", "http/1.1"):
            status, headers, _ = send(shared, transport, "/api/v1/logs", body, headers_for("gzip"))
            seen.append((status, headers.get("retry-after")))
        assert seen == [(503, "2"), (429, "1"), (413, None), (401, None)]
        status, _, _ = send(shared, "http/3", "/api/v1/logs", body, headers_for("gzip"))
        assert status == 200

    def test_delay_step_delays_the_answer(self, shared: ReceiverProcess) -> None:
        """A delay step holds the answer back, then serves normally."""
        shared.set_faults([{"delay_s": 0.4}])
        started = time.monotonic()
        status, _, _ = send(
            shared,
            "http/3",
            "/api/v1/logs",
            encode(log_batch(new_ids(1)), "gzip"),
            headers_for("gzip"),
        )
        assert status == 200 and time.monotonic() - started >= 0.4

    def test_close_step_is_a_transport_error(self, shared: ReceiverProcess) -> None:
        """close drops the TCP connection / the QUIC connection without any status."""
        shared.set_faults([{"close": True}, {"close": True}])
        body = encode(log_batch(new_ids(1)), "gzip")
        with pytest.raises(H3ConnectionLost):
            send(shared, "http/3", "/api/v1/logs", body, headers_for("gzip"))
        with pytest.raises(httpx.TransportError):
            send(shared, "https/1.1", "/api/v1/logs", body, headers_for("gzip"))
        assert shared.stats()["faults_pending"] == 0
        assert [r["status"] for r in shared.requests(limit=2)] == [None, None]

    def test_protocol_filtered_close_forces_fallback_shape(self, shared: ReceiverProcess) -> None:
        """A close for http/3 only: HTTP/3 fails, the same batch over HTTP/1.1 succeeds."""
        shared.set_faults([{"close": True, "protocol": "http/3"}])
        body = encode(log_batch(new_ids(2)), "gzip")
        status, _, _ = send(shared, "https/1.1", "/api/v1/logs", body, headers_for("gzip"))
        assert status == 200
        with pytest.raises(H3ConnectionLost):
            send(shared, "http/3", "/api/v1/logs", body, headers_for("gzip"))

    def test_poison_answers_500_every_time(self, shared: ReceiverProcess) -> None:
        """A poisoned record fails its request on each retry, over each protocol."""
        shared.set_faults(poison=["POISON-PILL"])
        document = log_batch(new_ids(2))
        document["logs"][1]["message"] = "xx POISON-PILL xx"
        for transport in ("http/3", "https/1.1", "http/3"):
            status, _, _ = send(
                shared, transport, "/api/v1/logs", encode(document, "gzip"), headers_for("gzip")
            )
            assert status == 500


class TestOwnProcess:
    def test_restart_keeps_counts_dedup_and_urls(self) -> None:
        """After a restart the URLs, counters and dedup state are unchanged."""
        ids = new_ids(3)
        body = encode(log_batch(ids), "zstd")
        with ReceiverProcess() as receiver:
            send(receiver, "http/3", "/api/v1/logs", body, headers_for("zstd"))
            urls = (receiver.http_url, receiver.https_url, receiver.h3_url, receiver.ca_file)
            ca_pem = Path(receiver.ca_file).read_bytes()
            old_pid = receiver.pid
            receiver.restart()
            assert receiver.pid != old_pid
            assert (
                receiver.http_url,
                receiver.https_url,
                receiver.h3_url,
                receiver.ca_file,
            ) == urls
            assert Path(receiver.ca_file).read_bytes() == ca_pem
            assert receiver.stats()["unique_ids"] == 3
            status, _, _ = send(receiver, "http/3", "/api/v1/logs", body, headers_for("zstd"))
            assert status == 200
            stats = receiver.stats()
            assert (stats["unique_ids"], stats["duplicates"], stats["requests"]) == (3, 3, 2)
            assert receiver.record_ids("logs") == ids

    def test_sigterm_shuts_down_cleanly(self) -> None:
        """SIGTERM ends the process with 0 and removes ready.json."""
        with ReceiverProcess() as receiver:
            ready = receiver.data_dir / "ready.json"
            assert ready.exists()
            assert receiver.stop() == 0
            assert not ready.exists()

    def test_credentials_required_and_never_leaked(self) -> None:
        """With keys configured, requests need both; keys are absent from argv, logs, replies."""
        body = encode(log_batch(new_ids(1)), "gzip")
        with ReceiverProcess(license_key=LICENSE_KEY, api_key=API_KEY) as receiver:
            good = headers_for(
                "gzip", authorization=f"Bearer {LICENSE_KEY}", **{"x-api-key": API_KEY}
            )
            bad = headers_for(
                "gzip",
                authorization="Bearer PENG-0000-0000-0000-0000-0000",
                **{"x-api-key": API_KEY},
            )
            for transport in ("http/3", "https/1.1"):
                assert send(receiver, transport, "/api/v1/logs", body, good)[0] == 200
                status, _, reply = send(receiver, transport, "/api/v1/logs", body, bad)
                assert status == 401 and LICENSE_KEY.encode() not in reply
                assert (
                    send(receiver, transport, "/api/v1/logs", body, headers_for("gzip"))[0] == 401
                )
            cmdline = Path(f"/proc/{receiver.pid}/cmdline").read_bytes()
            exposed = [
                cmdline,
                json.dumps(receiver.requests()).encode(),
                json.dumps(receiver.stats()).encode(),
            ]
            receiver.stop()
            exposed.append(receiver.log_file.read_bytes())
            for text in exposed:
                assert LICENSE_KEY.encode() not in text and API_KEY.encode() not in text

    def test_single_mode_replies_single_record_shape(self) -> None:
        """mode single: a batch is one record, gzip is a 400, metrics reply metric_id."""
        with ReceiverProcess(mode="single") as receiver:
            document = log_batch(new_ids(2))
            status, _, reply = send(
                receiver,
                "http/1.1",
                "/api/v1/logs",
                encode(document, "identity"),
                headers_for("identity"),
            )
            answer = json.loads(reply)
            assert status == 200 and answer["status"] == "accepted" and answer["log_id"]
            status, _, _ = send(
                receiver, "https/1.1", "/api/v1/logs", encode(document, "gzip"), headers_for("gzip")
            )
            assert status == 400
            status, _, reply = send(
                receiver,
                "http/3",
                "/api/v1/metrics",
                encode({"name": "up", "type": "gauge", "value": 1, "labels": {}}, "identity"),
                {"content-type": "application/json"},
            )
            assert status == 200 and set(json.loads(reply)) == {"status", "metric_id"}
            assert receiver.stats()["mode"] == "single"

    def test_startup_fault_file_and_body_limit(self) -> None:
        """--faults applies from the first request; --max-body-bytes gives a real 413."""
        with ReceiverProcess(
            faults={"steps": [{"status": 503, "retry_after": 7}]},
            extra_args=["--max-body-bytes", "2048"],
        ) as receiver:
            small = encode(log_batch(new_ids(1)), "identity")
            status, headers, _ = send(
                receiver, "http/1.1", "/api/v1/logs", small, headers_for("identity")
            )
            assert (status, headers.get("retry-after")) == (503, "7")
            assert (
                send(receiver, "http/1.1", "/api/v1/logs", small, headers_for("identity"))[0] == 200
            )
            large = encode(log_batch(new_ids(40)), "identity")
            assert len(large) > 2048
            for transport in TRANSPORTS:
                assert (
                    send(receiver, transport, "/api/v1/logs", large, headers_for("identity"))[0]
                    == 413
                )

    def test_http3_only_and_separate_port(self) -> None:
        """Listeners can be disabled; HTTP/3 can use its own port number."""
        with ReceiverProcess(https=False) as receiver:
            assert receiver.https_url is None and receiver.h3_port
            status, _, _ = send(
                receiver,
                "http/3",
                "/api/v1/logs",
                encode(log_batch(new_ids(1)), "gzip"),
                headers_for("gzip"),
            )
            assert status == 200
            wait_until(
                lambda: receiver.stats()["by_protocol"]["http/3"]["unique_ids"] == 1, timeout=5
            )

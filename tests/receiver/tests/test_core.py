"""Stories for ReceiverCore: requests fed at explicit times, answers and counters asserted.

No sockets, no files (an in-memory SQLite store), no clock, no sleep.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard

from kk_receiver.core import ReceiverCore, ReceiverSettings
from kk_receiver.faults import parse_fault_script
from kk_receiver.messages import HTTP3, HTTP11, CloseConnection, Request, Respond
from kk_receiver.store import SqliteStore

LICENSE_KEY = "PENG-AAAA-BBBB-CCCC-DDDD-EEEE"
API_KEY = "api-key-0123456789"


def log_record(record_id: str, **overrides: Any) -> dict[str, Any]:
    record = {
        "id": record_id,
        "timestamp": "2026-11-26T10:00:00.123456789Z",
        "log_level": "info",
        "message": f"GET /api/items 200 ({record_id})",
        "service_name": "checkout",
        "hostname": "node-1",
        "labels": {"k8s_namespace": "shop", "stream": "stdout"},
        "tags": [],
    }
    record.update(overrides)
    return record


def metric_record(record_id: str, **overrides: Any) -> dict[str, Any]:
    record = {
        "id": record_id,
        "name": "container_cpu_usage_seconds_total",
        "type": "counter",
        "value": 1234.5,
        "labels": {"namespace": "shop", "pod": "checkout-7d9f"},
        "timestamp": "2026-11-26T10:00:00Z",
        "help": "Cumulative cpu time consumed",
    }
    record.update(overrides)
    return record


def batch(kind: str, records: list[Any]) -> dict[str, Any]:
    return {"source": "cluster-a/node-1", "application": "killkrill-k8s-agent", kind: records}


def post(
    path: str,
    document: Any = None,
    *,
    raw: bytes | None = None,
    encoding: str | None = None,
    protocol: str = HTTP11,
    headers: dict[str, str] | None = None,
) -> Request:
    body = raw if raw is not None else json.dumps(document).encode()
    for coding in (encoding or "").split(","):  # applied in order (RFC 9110 section 8.4)
        if coding.strip().lower() == "gzip":
            body = gzip.compress(body)
        elif coding.strip() == "zstd":
            body = zstandard.ZstdCompressor().compress(body)
    all_headers = {"content-type": "application/json", **(headers or {})}
    if encoding is not None:
        all_headers["content-encoding"] = encoding
    return Request("POST", path, all_headers, body, protocol, tls=True)  # type: ignore[arg-type]


def get(target: str) -> Request:
    return Request("GET", target)


def answer(action: Any) -> tuple[int, Any]:
    assert isinstance(action, Respond), action
    return action.status, json.loads(action.body)


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    store = SqliteStore.in_memory()
    yield store
    store.close()


def make_core(store: SqliteStore, **settings: Any) -> ReceiverCore:
    counter = itertools.count(1)
    return ReceiverCore(
        ReceiverSettings(**settings), store, id_factory=lambda: f"generated-{next(counter)}"
    )


def stats(core: ReceiverCore) -> dict[str, Any]:
    return answer(core.handle(get("/api/v1/stats"), now=0.0))[1]


class TestBatchIngest:
    def test_valid_log_batch_is_stored_and_counted(self, store: SqliteStore) -> None:
        """A valid batch answers success with processed = its size, and stats count it."""
        core = make_core(store)
        action = core.handle(
            post("/api/v1/logs", batch("logs", [log_record("a"), log_record("b")])), now=10.0
        )
        assert answer(action) == (200, {"status": "success", "processed": 2})
        counts = stats(core)
        assert (counts["requests"], counts["records_received"], counts["unique_ids"]) == (1, 2, 2)
        assert counts["by_protocol"]["http/1.1"]["logs"]["unique_ids"] == 2
        assert counts["by_protocol"]["http/3"]["requests"] == 0

    def test_valid_metric_batch_is_stored(self, store: SqliteStore) -> None:
        """Metric batches go to /api/v1/metrics and are counted under metrics."""
        core = make_core(store)
        action = core.handle(
            post(
                "/api/v1/metrics",
                batch("metrics", [metric_record("m1"), metric_record("m2", value=3)]),
            ),
            now=1.0,
        )
        assert answer(action) == (200, {"status": "success", "processed": 2})
        assert stats(core)["by_kind"]["metrics"]["unique_ids"] == 2

    def test_records_endpoint_lists_ids_in_arrival_order(self, store: SqliteStore) -> None:
        """GET /api/v1/records returns stored records in arrival order with their protocol."""
        core = make_core(store)
        core.handle(post("/api/v1/logs", batch("logs", [log_record("z"), log_record("a")])), 1.0)
        core.handle(post("/api/v1/logs", batch("logs", [log_record("m")]), protocol=HTTP3), 2.0)
        core.handle(post("/api/v1/metrics", batch("metrics", [metric_record("x")])), 3.0)
        _, body = answer(core.handle(get("/api/v1/records?kind=logs"), now=4.0))
        assert [(r["id"], r["protocol"]) for r in body["records"]] == [
            ("z", "http/1.1"),
            ("a", "http/1.1"),
            ("m", "http/3"),
        ]
        assert body["records"][0]["record"] == log_record("z")
        assert body["records"][2]["received_at"] == 2.0

    @pytest.mark.parametrize(
        "encoding", [None, "identity", "gzip", "zstd", "GZIP", "identity, gzip", "zstd, gzip"]
    )
    def test_supported_encodings_are_decoded(self, store: SqliteStore, encoding: str) -> None:
        """gzip, zstd, identity and no Content-Encoding all work."""
        core = make_core(store)
        action = core.handle(
            post("/api/v1/logs", batch("logs", [log_record("a")]), encoding=encoding), 1.0
        )
        assert answer(action) == (200, {"status": "success", "processed": 1})

    def test_unknown_encoding_is_415(self, store: SqliteStore) -> None:
        """An encoding the receiver does not implement is refused with 415, nothing stored."""
        core = make_core(store)
        request = post(
            "/api/v1/logs", batch("logs", [log_record("a")]), headers={"content-encoding": "br"}
        )
        status, body = answer(core.handle(request, 1.0))
        assert status == 415 and "br" in body["error"]
        assert stats(core)["unique_ids"] == 0

    @pytest.mark.parametrize("encoding", ["gzip", "zstd"])
    def test_undecodable_body_is_400(self, store: SqliteStore, encoding: str) -> None:
        """A body that is not valid for its declared encoding is a 400."""
        core = make_core(store)
        request = post(
            "/api/v1/logs",
            raw=b"plain text, not compressed",
            headers={"content-encoding": encoding},
        )
        assert answer(core.handle(request, 1.0))[0] == 400

    @pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-ndjson"])
    def test_content_type_must_be_json(self, store: SqliteStore, content_type: str | None) -> None:
        """Anything but application/json (parameters allowed) is a 415."""
        core = make_core(store)
        request = post("/api/v1/logs", batch("logs", [log_record("a")]))
        headers = dict(request.headers)
        headers.pop("content-type")
        if content_type:
            headers["content-type"] = content_type
        refused = Request("POST", "/api/v1/logs", headers, request.body)
        assert answer(core.handle(refused, 1.0))[0] == 415
        charset = Request(
            "POST",
            "/api/v1/logs",
            {"content-type": "application/json; charset=utf-8"},
            request.body,
        )
        assert answer(core.handle(charset, 1.0))[0] == 200

    @pytest.mark.parametrize(
        "document",
        [
            [log_record("a")],
            {"logs": [log_record("a")]},
            {"source": "", "logs": []},
            {"source": "c/n", "logs": {"id": "a"}},
            {"source": "c/n", "metrics": [metric_record("m")]},
            "just a string",
        ],
        ids=["list", "no-source", "empty-source", "logs-not-list", "wrong-kind", "string"],
    )
    def test_body_that_is_not_a_batch_is_400(self, store: SqliteStore, document: Any) -> None:
        """A body that isn't a logs batch at all is a 400 with a JSON error."""
        core = make_core(store)
        status, body = answer(core.handle(post("/api/v1/logs", document), 1.0))
        assert status == 400
        assert body["status"] == "error" and body["error"].startswith("not a logs batch")

    @pytest.mark.parametrize(
        "raw", [b"{not json", b'{"source": "c", "logs": [NaN]}', b"\xff\xfe{}"]
    )
    def test_invalid_json_is_400(self, store: SqliteStore, raw: bytes) -> None:
        """Broken JSON, NaN constants and non-UTF-8 bodies are a 400."""
        core = make_core(store)
        assert answer(core.handle(post("/api/v1/logs", raw=raw), 1.0)) == (
            400,
            {"status": "error", "error": "invalid JSON body"},
        )

    def test_a_lone_surrogate_escape_is_valid_json_and_kept(self, store: SqliteStore) -> None:
        """``"\\ud800"`` is valid JSON text that no UTF-8 can carry: the record is stored, its
        message unchanged (the fast parser refuses it; the stdlib's answer is the one kept)."""
        core = make_core(store)
        raw = json.dumps(batch("logs", [log_record("s", message="a \ud800 b")])).encode()
        assert b"\\ud800" in raw
        assert answer(core.handle(post("/api/v1/logs", raw=raw), 1.0))[0] == 200
        [row] = store.records("logs")
        assert json.loads(row.record_json)["message"] == "a \ud800 b"

    def test_empty_batch_processes_nothing(self, store: SqliteStore) -> None:
        """An empty record list is valid and answers processed 0."""
        core = make_core(store)
        assert answer(core.handle(post("/api/v1/logs", batch("logs", [])), 1.0)) == (
            200,
            {"status": "success", "processed": 0},
        )


class TestRecordValidation:
    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"id": None}, "invalid_id"),
            ({"id": ""}, "invalid_id"),
            ({"timestamp": 1795683600}, "invalid_timestamp"),
            ({"timestamp": "2026-11-26T10:00:00+00:00"}, "invalid_timestamp"),
            ({"timestamp": "2026-11-26 10:00:00Z"}, "invalid_timestamp"),
            ({"timestamp": "2026-11-26T10:00:00.1234567891Z"}, "invalid_timestamp"),
            ({"timestamp": "2026-13-26T10:00:00Z"}, "invalid_timestamp"),
            ({"timestamp": "2026-02-30T10:00:00Z"}, "invalid_timestamp"),
            ({"timestamp": "2026-11-26T24:00:00Z"}, "invalid_timestamp"),
            ({"log_level": "warning"}, "invalid_log_level"),
            ({"log_level": "INFO"}, "invalid_log_level"),
            ({"message": 42}, "invalid_message"),
            ({"message": "x" * 10_001}, "message_too_long"),
            ({"service_name": ""}, "invalid_service_name"),
            ({"labels": {"k8s.pod": "p"}}, "label_key_with_dot"),
            ({"labels": {"nested": {"a": "b"}}}, "invalid_labels"),
            ({"labels": ["a"]}, "invalid_labels"),
            ({"tags": "a,b"}, "invalid_tags"),
        ],
    )
    def test_invalid_log_record_is_rejected_with_reason(
        self, store: SqliteStore, overrides: dict[str, Any], reason: str
    ) -> None:
        """An invalid record is rejected and counted with its reason; its neighbours are stored."""
        core = make_core(store)
        records = [log_record("good-1"), log_record("bad", **overrides), log_record("good-2")]
        action = core.handle(post("/api/v1/logs", batch("logs", records)), 1.0)
        assert answer(action) == (200, {"status": "success", "processed": 2})
        counts = stats(core)
        assert (counts["records_received"], counts["unique_ids"], counts["rejected"]) == (3, 2, 1)
        assert counts["rejected_reasons"]["logs"] == {reason: 1}
        assert counts["by_protocol"]["http/1.1"]["logs"]["rejected"] == 1

    def test_log_record_limits_and_optional_fields_are_accepted(self, store: SqliteStore) -> None:
        """10,000 characters, nanoseconds, no labels/tags and unknown fields are all fine."""
        core = make_core(store)
        minimal = {
            "id": "m",
            "timestamp": "2026-11-26T10:00:00Z",
            "log_level": "fatal",
            "message": "x" * 10_000,
            "service_name": "s",
            "extra": {"any": 1},
        }
        action = core.handle(post("/api/v1/logs", batch("logs", [minimal])), 1.0)
        assert answer(action) == (200, {"status": "success", "processed": 1})

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"name": "bad name"}, "invalid_name"),
            ({"type": "histogram"}, "invalid_type"),
            ({"type": "untyped"}, "invalid_type"),
            ({"value": "1.5"}, "invalid_value"),
            ({"value": True}, "invalid_value"),
            ({"labels": {"a": 1}}, "invalid_labels"),
            ({"timestamp": "yesterday"}, "invalid_timestamp"),
            ({"id": 7}, "invalid_id"),
        ],
    )
    def test_invalid_metric_is_rejected_with_reason(
        self, store: SqliteStore, overrides: dict[str, Any], reason: str
    ) -> None:
        """Invalid samples are rejected per reason, valid ones stored."""
        core = make_core(store)
        records = [metric_record("ok"), metric_record("bad", **overrides)]
        action = core.handle(post("/api/v1/metrics", batch("metrics", records)), 1.0)
        assert answer(action) == (200, {"status": "success", "processed": 1})
        assert stats(core)["rejected_reasons"]["metrics"] == {reason: 1}

    def test_overflowing_number_is_non_finite(self, store: SqliteStore) -> None:
        """1e400 is valid JSON but not a finite sample value."""
        core = make_core(store)
        raw = json.dumps(batch("metrics", [metric_record("m", value="HUGE")]))
        request = post("/api/v1/metrics", raw=raw.replace('"HUGE"', "1e400").encode())
        assert answer(core.handle(request, 1.0)) == (200, {"status": "success", "processed": 0})
        assert stats(core)["rejected_reasons"]["metrics"] == {"non_finite_value": 1}

    def test_metric_without_labels_is_rejected(self, store: SqliteStore) -> None:
        """labels is required on a metric sample (it carries the series identity)."""
        core = make_core(store)
        record = metric_record("m")
        del record["labels"]
        action = core.handle(post("/api/v1/metrics", batch("metrics", [record])), 1.0)
        assert answer(action) == (200, {"status": "success", "processed": 0})
        assert stats(core)["rejected_reasons"]["metrics"] == {"invalid_labels": 1}


class TestDedup:
    def test_resent_batch_counts_duplicates_and_stores_once(self, store: SqliteStore) -> None:
        """The same batch over the other protocol is acknowledged but stored only once."""
        core = make_core(store)
        document = batch("logs", [log_record("a"), log_record("b")])
        core.handle(post("/api/v1/logs", document, protocol=HTTP3), 1.0)
        action = core.handle(post("/api/v1/logs", document, protocol=HTTP11), 2.0)
        assert answer(action) == (200, {"status": "success", "processed": 2})
        counts = stats(core)
        assert (counts["unique_ids"], counts["duplicates"], counts["records_received"]) == (2, 2, 4)
        assert counts["by_protocol"]["http/3"]["unique_ids"] == 2
        assert counts["by_protocol"]["http/1.1"]["duplicates"] == 2
        _, body = answer(core.handle(get("/api/v1/records"), 3.0))
        assert [r["id"] for r in body["records"]] == ["a", "b"]

    def test_duplicate_inside_one_batch_is_counted(self, store: SqliteStore) -> None:
        """An id repeated within a batch is stored once; the repeat is a duplicate."""
        core = make_core(store)
        action = core.handle(
            post("/api/v1/logs", batch("logs", [log_record("a"), log_record("a")])), 1.0
        )
        assert answer(action) == (200, {"status": "success", "processed": 2})
        assert (stats(core)["unique_ids"], stats(core)["duplicates"]) == (1, 1)

    def test_dedup_is_per_kind(self, store: SqliteStore) -> None:
        """A log and a metric may share an id: both are stored."""
        core = make_core(store)
        core.handle(post("/api/v1/logs", batch("logs", [log_record("same")])), 1.0)
        core.handle(post("/api/v1/metrics", batch("metrics", [metric_record("same")])), 2.0)
        assert (stats(core)["unique_ids"], stats(core)["duplicates"]) == (2, 0)


class TestAuth:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"authorization": "Bearer wrong-key"},
            {"authorization": LICENSE_KEY},
            {"authorization": "Basic " + LICENSE_KEY},
        ],
        ids=["missing", "wrong", "no-scheme", "basic"],
    )
    def test_license_key_required(self, store: SqliteStore, headers: dict[str, str]) -> None:
        """Without the right bearer token the answer is 401 and nothing is stored."""
        core = make_core(store, license_key=LICENSE_KEY)
        action = core.handle(
            post("/api/v1/logs", batch("logs", [log_record("a")]), headers=headers), 1.0
        )
        assert isinstance(action, Respond) and action.status == 401
        assert LICENSE_KEY.encode() not in action.body
        assert action.header("www-authenticate") == 'Bearer realm="killkrill"'
        assert stats(core)["unique_ids"] == 0
        assert stats(core)["responses"] == {"401": 1}

    def test_right_license_key_is_accepted(self, store: SqliteStore) -> None:
        """The configured key as a bearer token is accepted (scheme case-insensitive)."""
        core = make_core(store, license_key=LICENSE_KEY)
        request = post(
            "/api/v1/logs",
            batch("logs", [log_record("a")]),
            headers={"authorization": f"bearer {LICENSE_KEY}"},
        )
        assert answer(core.handle(request, 1.0))[0] == 200

    def test_api_key_required_alongside_license(self, store: SqliteStore) -> None:
        """With both configured, both headers must be right."""
        core = make_core(store, license_key=LICENSE_KEY, api_key=API_KEY)
        bearer = {"authorization": f"Bearer {LICENSE_KEY}"}
        cases = [
            (bearer, 401),
            ({**bearer, "x-api-key": "nope"}, 401),
            ({**bearer, "x-api-key": API_KEY}, 200),
        ]
        for headers, expected in cases:
            action = core.handle(
                post("/api/v1/logs", batch("logs", [log_record("a")]), headers=headers), 1.0
            )
            assert answer(action)[0] == expected
            assert isinstance(action, Respond) and API_KEY.encode() not in action.body

    def test_credentials_never_reach_requests_log_or_stats(self, store: SqliteStore) -> None:
        """The request log shows that credentials were sent, never their values."""
        core = make_core(store, license_key=LICENSE_KEY, api_key=API_KEY)
        for token in (LICENSE_KEY, "a-wrong-secret"):
            core.handle(
                post(
                    "/api/v1/logs",
                    batch("logs", [log_record("a")]),
                    headers={"authorization": f"Bearer {token}", "x-api-key": API_KEY},
                ),
                1.0,
            )
        requests = core.handle(get("/api/v1/requests"), 2.0)
        stats_body = core.handle(get("/api/v1/stats"), 2.0)
        for action in (requests, stats_body):
            assert isinstance(action, Respond)
            for secret in (LICENSE_KEY, API_KEY, "a-wrong-secret"):
                assert secret.encode() not in action.body
        entries = answer(requests)[1]["requests"]
        assert [e["authorization"] for e in entries] == ["Bearer [redacted]"] * 2
        assert [e["status"] for e in entries] == [200, 401]

    def test_repr_of_settings_hides_credentials(self) -> None:
        """Settings can be logged without leaking the keys."""
        text = repr(ReceiverSettings(license_key=LICENSE_KEY, api_key=API_KEY))
        assert LICENSE_KEY not in text and API_KEY not in text


class TestLimits:
    def test_body_over_limit_is_413(self, store: SqliteStore) -> None:
        """A body larger than max_body_bytes as received is a 413."""
        core = make_core(store, max_body_bytes=1000)
        small = post("/api/v1/logs", batch("logs", [log_record("a")]))
        big = post("/api/v1/logs", batch("logs", [log_record(str(i)) for i in range(20)]))
        assert len(small.body) <= 1000 < len(big.body)
        assert answer(core.handle(small, 1.0))[0] == 200
        assert answer(core.handle(big, 1.0))[0] == 413

    def test_zip_bomb_is_413_without_inflating(self, store: SqliteStore) -> None:
        """A small gzip body that inflates past max_decoded_bytes is a 413."""
        core = make_core(store, max_decoded_bytes=1024 * 1024)
        bomb = gzip.compress(b" " * (50 * 1024 * 1024))
        request = post("/api/v1/logs", raw=bomb, headers={"content-encoding": "gzip"})
        assert len(bomb) < 100_000
        status, body = answer(core.handle(request, 1.0))
        assert status == 413 and "decoded" in body["error"]

    def test_too_many_records_is_413(self, store: SqliteStore) -> None:
        """With max_batch_records set, a larger batch is a 413 (the agent splits it)."""
        core = make_core(store, max_batch_records=2)
        records = [log_record(str(i)) for i in range(3)]
        assert answer(core.handle(post("/api/v1/logs", batch("logs", records)), 1.0))[0] == 413
        assert answer(core.handle(post("/api/v1/logs", batch("logs", records[:2])), 1.0))[0] == 200


class TestFaults:
    def install(self, core: ReceiverCore, script: dict[str, Any]) -> None:
        request = Request("PUT", "/api/v1/faults", {}, json.dumps(script).encode())
        assert answer(core.handle(request, 0.0))[0] == 200

    def test_steps_apply_in_order_then_normal_service(self, store: SqliteStore) -> None:
        """Each ingest request consumes one step in order; afterwards requests succeed."""
        core = make_core(store)
        self.install(
            core,
            {
                "steps": [
                    {"status": 503, "retry_after": 2},
                    {"status": 429},
                    {"status": 413},
                    {"status": 401},
                ]
            },
        )
        document = batch("logs", [log_record("a")])
        actions = [core.handle(post("/api/v1/logs", document), float(t)) for t in range(5)]
        assert [a.status for a in actions if isinstance(a, Respond)] == [503, 429, 413, 401, 200]
        assert isinstance(actions[0], Respond) and actions[0].header("retry-after") == "2"
        assert isinstance(actions[1], Respond) and actions[1].header("retry-after") is None
        counts = stats(core)
        assert counts["responses"] == {"503": 1, "429": 1, "413": 1, "401": 1, "200": 1}
        assert (counts["unique_ids"], counts["faults_pending"]) == (1, 0)

    def test_delay_then_normal_handling(self, store: SqliteStore) -> None:
        """A delay step answers normally, after the delay."""
        core = make_core(store)
        self.install(core, {"steps": [{"delay_s": 1.5}, {"delay_s": 0.5, "status": 500}]})
        first = core.handle(post("/api/v1/logs", batch("logs", [log_record("a")])), 1.0)
        second = core.handle(post("/api/v1/logs", batch("logs", [log_record("b")])), 2.0)
        assert isinstance(first, Respond) and (first.status, first.delay_s) == (200, 1.5)
        assert isinstance(second, Respond) and (second.status, second.delay_s) == (500, 0.5)
        assert stats(core)["unique_ids"] == 1

    def test_close_step_drops_connection_and_stores_nothing(self, store: SqliteStore) -> None:
        """A close step yields CloseConnection; the request is counted as closed."""
        core = make_core(store)
        self.install(core, {"steps": [{"close": True}]})
        action = core.handle(post("/api/v1/logs", batch("logs", [log_record("a")])), 1.0)
        assert action == CloseConnection()
        assert stats(core)["responses"] == {"closed": 1}
        assert stats(core)["unique_ids"] == 0

    def test_protocol_filter_skips_other_protocols(self, store: SqliteStore) -> None:
        """A step for http/3 is not consumed by HTTP/1.1 requests, which are served normally."""
        core = make_core(store)
        self.install(core, {"steps": [{"close": True, "protocol": "http/3", "times": 2}]})
        document = batch("logs", [log_record("a")])
        assert answer(core.handle(post("/api/v1/logs", document, protocol=HTTP11), 1.0))[0] == 200
        assert isinstance(
            core.handle(post("/api/v1/logs", document, protocol=HTTP3), 2.0), CloseConnection
        )
        assert stats(core)["faults_pending"] == 1

    def test_kind_filter(self, store: SqliteStore) -> None:
        """A step for metrics leaves log requests alone."""
        core = make_core(store)
        self.install(core, {"steps": [{"status": 503, "kind": "metrics"}]})
        assert (
            answer(core.handle(post("/api/v1/logs", batch("logs", [log_record("a")])), 1.0))[0]
            == 200
        )
        assert (
            answer(
                core.handle(post("/api/v1/metrics", batch("metrics", [metric_record("m")])), 1.0)
            )[0]
            == 503
        )

    def test_canned_body(self, store: SqliteStore) -> None:
        """A step may answer any body, e.g. a partial success, without storing."""
        core = make_core(store)
        self.install(
            core, {"steps": [{"status": 200, "body": {"status": "success", "processed": 1}}]}
        )
        action = core.handle(
            post("/api/v1/logs", batch("logs", [log_record("a"), log_record("b")])), 1.0
        )
        assert answer(action) == (200, {"status": "success", "processed": 1})
        assert stats(core)["unique_ids"] == 0

    def test_poison_fails_whole_request_every_time(self, store: SqliteStore) -> None:
        """A poisoned record makes its request 500 on every attempt; other batches pass."""
        core = make_core(store)
        self.install(core, {"poison": ["BOOM", "bad_metric_total"]})
        poisoned = batch("logs", [log_record("a"), log_record("p", message="xx BOOM xx")])
        for now in (1.0, 2.0, 3.0):
            assert answer(core.handle(post("/api/v1/logs", poisoned), now))[0] == 500
        assert (
            answer(core.handle(post("/api/v1/logs", batch("logs", [log_record("a")])), 4.0))[0]
            == 200
        )
        metric = batch("metrics", [metric_record("m", name="bad_metric_total")])
        assert answer(core.handle(post("/api/v1/metrics", metric), 5.0))[0] == 500
        assert stats(core)["unique_ids"] == 1

    def test_delete_clears_script(self, store: SqliteStore) -> None:
        """DELETE /api/v1/faults removes pending steps and poison."""
        core = make_core(store)
        self.install(core, {"steps": [{"status": 500}], "poison": ["a"]})
        assert answer(core.handle(Request("DELETE", "/api/v1/faults"), 1.0))[0] == 200
        assert answer(core.handle(get("/api/v1/faults"), 1.0))[1] == {"steps": [], "poison": []}
        assert (
            answer(core.handle(post("/api/v1/logs", batch("logs", [log_record("a")])), 2.0))[0]
            == 200
        )

    @pytest.mark.parametrize(
        "script",
        [
            {"steps": [{"status": 99}]},
            {"steps": [{"close": True, "status": 500}]},
            {"steps": [{"retry_after": 3}]},
            {"steps": [{"protocol": "http/2", "status": 500}]},
            {"steps": [{"stauts": 500}]},
            {"steps": [{}]},
            {"poison": "BOOM"},
            {"unknown": 1},
        ],
    )
    def test_malformed_script_is_400(self, store: SqliteStore, script: dict[str, Any]) -> None:
        """A malformed script is refused as a whole and the previous one stays."""
        core = make_core(store)
        self.install(core, {"steps": [{"status": 503}]})
        request = Request("PUT", "/api/v1/faults", {}, json.dumps(script).encode())
        assert answer(core.handle(request, 1.0))[0] == 400
        assert stats(core)["faults_pending"] == 1

    def test_startup_script_is_used(self, store: SqliteStore) -> None:
        """A script given at construction (the --faults file) applies from the first request."""
        script = parse_fault_script({"steps": [{"status": 502}]})
        core = ReceiverCore(ReceiverSettings(), store, faults=script)
        assert answer(core.handle(post("/api/v1/logs", batch("logs", [])), 1.0))[0] == 502


class TestSingleMode:
    def test_log_reply_is_single_record_shape(self, store: SqliteStore) -> None:
        """One object per request; reply {"status":"accepted","log_id":...}."""
        core = make_core(store, mode="single")
        record = {
            "timestamp": "2026-11-26T10:00:00Z",
            "log_level": "info",
            "message": "hi",
            "service_name": "s",
        }
        assert answer(core.handle(post("/api/v1/logs", record), 1.0)) == (
            200,
            {"status": "accepted", "log_id": "generated-1"},
        )

    def test_metric_reply_is_single_record_shape(self, store: SqliteStore) -> None:
        """Metrics reply {"status":"success","metric_id":...}."""
        core = make_core(store, mode="single")
        record = {"name": "up", "type": "gauge", "value": 1, "labels": {}}
        assert answer(core.handle(post("/api/v1/metrics", record), 1.0)) == (
            200,
            {"status": "success", "metric_id": "generated-1"},
        )

    def test_batch_body_is_accepted_as_one_record(self, store: SqliteStore) -> None:
        """Like today's receivers, a batch is just one more record: the agent detects that."""
        core = make_core(store, mode="single")
        action = core.handle(post("/api/v1/logs", batch("logs", [log_record("a")])), 1.0)
        assert answer(action) == (200, {"status": "accepted", "log_id": "generated-1"})

    def test_gzip_is_400_and_auth_is_ignored(self, store: SqliteStore) -> None:
        """No decoding (gzip -> 400) and no credential check in single mode."""
        core = make_core(store, mode="single", license_key=LICENSE_KEY)
        record = {"message": "hi"}
        assert answer(core.handle(post("/api/v1/logs", record, encoding="gzip"), 1.0))[0] == 400
        assert answer(core.handle(post("/api/v1/logs", record), 1.0))[0] == 200

    def test_no_dedup(self, store: SqliteStore) -> None:
        """The same record twice is stored twice (these receivers know no ids)."""
        core = make_core(store, mode="single")
        for now in (1.0, 2.0):
            core.handle(post("/api/v1/logs", {"id": "same", "message": "hi"}), now)
        counts = stats(core)
        assert (counts["unique_ids"], counts["duplicates"], counts["mode"]) == (2, 0, "single")


class TestControlEndpoints:
    def test_requests_log_keeps_retry_metadata(self, store: SqliteStore) -> None:
        """Idempotency-Key, X-Batch-Size, encoding and user agent are recorded per request."""
        core = make_core(store)
        headers = {
            "idempotency-key": "batch-123",
            "x-batch-size": "1",
            "user-agent": "killkrill-agent/1.0",
            "x-cluster-name": "c",
        }
        core.handle(Request("PUT", "/api/v1/faults", {}, b'{"steps": [{"status": 503}]}'), 0.0)
        document = batch("logs", [log_record("a")])
        core.handle(
            post("/api/v1/logs", document, protocol=HTTP3, encoding="gzip", headers=headers), 1.0
        )
        core.handle(
            post("/api/v1/logs", document, protocol=HTTP11, encoding="gzip", headers=headers), 2.0
        )
        entries = answer(core.handle(get("/api/v1/requests"), 3.0))[1]["requests"]
        assert [(e["protocol"], e["status"], e["idempotency_key"]) for e in entries] == [
            ("http/3", 503, "batch-123"),
            ("http/1.1", 200, "batch-123"),
        ]
        last = entries[-1]
        assert (last["batch_size"], last["content_encoding"], last["records"]) == ("1", "gzip", 1)
        assert (last["user_agent"], last["cluster_name"], last["stored"]) == (
            "killkrill-agent/1.0",
            "c",
            1,
        )
        assert entries[0]["fault"] == "status=503"

    def test_requests_log_is_bounded(self) -> None:
        """Only the last request_log_limit requests are kept."""
        store = SqliteStore.in_memory(request_log_limit=3)
        core = make_core(store)
        for i in range(5):
            core.handle(
                post("/api/v1/logs", batch("logs", []), headers={"idempotency-key": str(i)}),
                float(i),
            )
        entries = answer(core.handle(get("/api/v1/requests"), 9.0))[1]["requests"]
        assert [e["idempotency_key"] for e in entries] == ["2", "3", "4"]
        store.close()

    @pytest.mark.parametrize(
        ("request_", "status"),
        [
            (Request("GET", "/api/v1/logs"), 405),
            (Request("GET", "/api/v2/logs"), 404),
            (Request("POST", "/api/v1/stats"), 405),
            (Request("GET", "/api/v1/records?kind=traces"), 400),
            (Request("GET", "/healthz"), 200),
        ],
    )
    def test_routing(self, store: SqliteStore, request_: Request, status: int) -> None:
        """Unknown paths are 404, wrong methods 405, bad queries 400; none is counted."""
        core = make_core(store)
        assert answer(core.handle(request_, 1.0))[0] == status
        assert stats(core)["requests"] == 0

    def test_stats_invariant(self, store: SqliteStore) -> None:
        """records_received == unique_ids + duplicates + rejected at every level."""
        core = make_core(store)
        core.handle(
            post("/api/v1/logs", batch("logs", [log_record("a"), log_record("b", log_level="x")])),
            1.0,
        )
        core.handle(post("/api/v1/logs", batch("logs", [log_record("a")]), protocol=HTTP3), 2.0)
        counts = stats(core)
        levels = [counts, *counts["by_kind"].values(), *counts["by_protocol"].values()]
        levels += [p[k] for p in counts["by_protocol"].values() for k in ("logs", "metrics")]
        for level in levels:
            assert level["records_received"] == (
                level["unique_ids"] + level["duplicates"] + level["rejected"]
            )
        assert counts["records_received"] == 3

"""The receiver's protocol logic: requests in, actions out; no sockets, no files, no clocks.

Theory of operation
-------------------
An adapter (``http11``, ``h3``) calls :meth:`ReceiverCore.handle` with a complete
:class:`~kk_receiver.messages.Request` and the current wall-clock time, and carries out the
:class:`~kk_receiver.messages.Respond` or :class:`~kk_receiver.messages.CloseConnection` it gets
back. The core's only side effects go through the injected store (one transaction per ingest
request) and its in-memory fault script.

An ingest request (``POST /api/v1/logs`` or ``/api/v1/metrics``) passes these gates in order;
the first that fails decides the answer (receiver-api.md, "Responses"):

1. the fault script: the first pending step that matches the protocol and kind is consumed and
   may delay, drop the connection, or answer a canned status;
2. credentials (batch mode, when configured): ``Authorization: Bearer <license key>`` and/or
   ``X-API-Key``, compared in constant time -> 401;
3. ``Content-Type: application/json`` -> 415;
4. the body size as received -> 413; ``Content-Encoding`` gzip/zstd/identity -> 415 for others,
   400 when undecodable, 413 when the decoded size passes its own limit (zip bombs);
5. the JSON document must be a batch of the endpoint's kind -> 400; too many records -> 413;
6. the poison list -> 500 for the whole request;
7. each record is validated: valid ones are stored (ids already stored count as duplicates),
   invalid ones are counted per reason; the answer is ``200 {"status": "success",
   "processed": N}`` with N = stored + duplicates.

In ``single`` mode (today's KillKrill receivers) gates 2, 3 and 5 do not exist, any content
coding but identity is a 400 (those receivers do not decode), any JSON object is one record,
nothing is deduplicated, and the answer is the single-record reply.

Control endpoints (stats, records, requests, faults) need no credentials and are not counted.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlsplit

import orjson

from .encoding import (
    DecodedTooLarge,
    UndecodableBody,
    UnsupportedEncoding,
    decode_body,
    parse_codings,
)
from .faults import FaultScript, FaultStep, InvalidFaultScript, parse_fault_script
from .messages import Action, CloseConnection, Request, Respond
from .outcome import AcceptedRecord, IngestOutcome, Store
from .stats import build_stats
from .validation import KINDS, InvalidBatch, Kind, record_problem, records_of_batch

Mode = Literal["batch", "single"]
MiB: Final = 1024 * 1024

INGEST_PATHS: Final[Mapping[str, Kind]] = {"/api/v1/logs": "logs", "/api/v1/metrics": "metrics"}
JSON_HEADERS: Final = (("content-type", "application/json"),)
REDACTED: Final = "[redacted]"


@dataclass(frozen=True)
class ReceiverSettings:
    """Startup options of the core. Credentials are excluded from ``repr`` so they never leak
    into a log line or a traceback.

    Attributes:
        mode: ``batch`` (the documented contract) or ``single`` (today's receivers).
        license_key: When set, batch requests need ``Authorization: Bearer <license_key>``.
        api_key: When set, batch requests need ``X-API-Key: <api_key>``.
        max_body_bytes: Largest body accepted as received (still compressed) -> else 413.
        max_decoded_bytes: Largest body after decoding -> else 413 (zip-bomb protection).
        max_batch_records: Largest record count per batch -> else 413; None: no limit.
    """

    mode: Mode = "batch"
    license_key: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    max_body_bytes: int = 10 * MiB
    max_decoded_bytes: int = 64 * MiB
    max_batch_records: int | None = None


@dataclass
class _Verdict:
    """What processing decided before anything is stored."""

    status: int
    document: Any
    headers: tuple[tuple[str, str], ...] = ()
    records: list[AcceptedRecord] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    record_count: int | None = None
    error: str | None = None


class _Refused(Exception):  # control flow inside _process; never escapes the core
    """Raised inside processing to answer an error status."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def new_record_id() -> str:
    """The default id generator for single mode: a random UUID, as today's receivers use."""
    return str(uuid.uuid4())


class ReceiverCore:
    """A KillKrill-compatible receiver without IO. See the module docstring for the gates.

    Args:
        settings: Mode, credentials and limits.
        store: Where outcomes, records and counters are persisted.
        faults: The initial fault script (default: none).
        id_factory: Generates record ids in single mode (injectable for tests).
    """

    def __init__(
        self,
        settings: ReceiverSettings,
        store: Store,
        faults: FaultScript | None = None,
        id_factory: Callable[[], str] = new_record_id,
    ) -> None:
        self.settings = settings
        self._store = store
        self._faults = faults if faults is not None else FaultScript()
        self._new_id = id_factory

    @property
    def max_body_bytes(self) -> int:
        """Adapters keep at most this many bytes + 1 of a body (the rest is discarded)."""
        return self.settings.max_body_bytes

    def handle(self, request: Request, now: float) -> Action:
        """Decide what to do with ``request``, received at wall-clock time ``now``."""
        url = urlsplit(request.target)
        query = parse_qs(url.query)
        kind = INGEST_PATHS.get(url.path)
        if kind is not None:
            if request.method != "POST":
                return _error(405, "use POST", (("allow", "POST"),))
            return self._ingest(request, kind, now)
        routes: dict[str, dict[str, Callable[[], Respond]]] = {
            "/healthz": {"GET": lambda: _json(200, {"status": "ok"})},
            "/api/v1/stats": {"GET": self._stats},
            "/api/v1/records": {"GET": lambda: self._records(query)},
            "/api/v1/requests": {"GET": lambda: self._requests(query)},
            "/api/v1/faults": {
                "GET": lambda: _json(200, self._faults.to_json()),
                "PUT": lambda: self._install_faults(request.body),
                "DELETE": self._clear_faults,
            },
        }
        methods = routes.get(url.path)
        if methods is None:
            return _error(404, "no such endpoint")
        handler = methods.get(request.method)
        if handler is None:
            return _error(405, "method not allowed", (("allow", ", ".join(methods)),))
        return handler()

    # ingest ------------------------------------------------------------------------------------

    def _ingest(self, request: Request, kind: Kind, now: float) -> Action:
        entry = _log_entry(request, kind, now)
        step = self._faults.take(request.protocol, kind)
        if step is not None:
            entry["fault"] = step.describe()
        delay_s = step.delay_s if step is not None else 0.0
        if step is not None and step.close:
            self._commit(request, kind, now, None, entry, _Verdict(status=0, document=None))
            return CloseConnection(delay_s=delay_s)
        if step is not None and step.status is not None:
            verdict = _fault_verdict(step)
        else:
            verdict = self._process(request, kind)
        self._commit(request, kind, now, verdict.status, entry, verdict)
        return Respond(
            status=verdict.status,
            headers=JSON_HEADERS + verdict.headers,
            body=json.dumps(verdict.document).encode(),
            delay_s=delay_s,
        )

    def _commit(
        self,
        request: Request,
        kind: Kind,
        now: float,
        status: int | None,
        entry: dict[str, Any],
        verdict: _Verdict,
    ) -> None:
        entry.update(status=status, records=verdict.record_count, error=verdict.error)
        self._store.commit(
            IngestOutcome(
                protocol=request.protocol,
                kind=kind,
                received_at=now,
                status=status,
                records=verdict.records,
                rejected=verdict.rejected,
                log_entry=entry,
            )
        )

    def _process(self, request: Request, kind: Kind) -> _Verdict:
        try:
            if self.settings.mode == "single":
                return self._process_single(request, kind)
            return self._process_batch(request, kind)
        except _Refused as refusal:
            return _Verdict(
                status=refusal.status,
                document={"status": "error", "error": refusal.message},
                headers=refusal.headers,
                error=refusal.message,
            )

    def _process_batch(self, request: Request, kind: Kind) -> _Verdict:
        self._check_credentials(request.headers)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise _Refused(415, "Content-Type must be application/json")
        self._check_body_size(request.body)
        try:
            codings = parse_codings(request.headers.get("content-encoding"))
            decoded = decode_body(request.body, codings, self.settings.max_decoded_bytes)
        except UnsupportedEncoding as exc:
            raise _Refused(415, f"{exc}; use gzip, zstd or identity") from exc
        except UndecodableBody as exc:
            raise _Refused(400, str(exc)) from exc
        except DecodedTooLarge as exc:
            raise _Refused(413, str(exc)) from exc
        try:
            raw_records = records_of_batch(_parse_json(decoded), kind)
        except InvalidBatch as exc:
            raise _Refused(400, f"not a {kind} batch: {exc}") from exc
        limit = self.settings.max_batch_records
        if limit is not None and len(raw_records) > limit:
            raise _Refused(413, f"batch has {len(raw_records)} records; the limit is {limit}")
        if self._faults.is_poisoned(kind, raw_records):
            raise _Refused(500, "internal error while storing the batch")
        verdict = _Verdict(status=200, document=None, record_count=len(raw_records))
        for raw in raw_records:
            problem = record_problem(raw, kind)
            if problem is None:
                verdict.records.append(AcceptedRecord(raw["id"], _compact(raw)))
            else:
                verdict.rejected[problem] = verdict.rejected.get(problem, 0) + 1
        verdict.document = {"status": "success", "processed": len(verdict.records)}
        return verdict

    def _process_single(self, request: Request, kind: Kind) -> _Verdict:
        # Today's receivers: no credentials, no decoding (a gzip body is unparseable JSON to
        # them, hence 400 rather than 415), any JSON object is one record, no dedup.
        self._check_body_size(request.body)
        if _is_content_encoded(request.headers.get("content-encoding")):
            raise _Refused(400, "invalid JSON body")
        document = _parse_json(request.body)
        if not isinstance(document, dict):
            raise _Refused(400, "body must be a JSON object")
        if self._faults.is_poisoned(kind, [document]):
            raise _Refused(500, "internal error while storing the record")
        record_id = self._new_id()
        reply_key = "log_id" if kind == "logs" else "metric_id"
        reply_status = "accepted" if kind == "logs" else "success"
        return _Verdict(
            status=200,
            document={"status": reply_status, reply_key: record_id},
            records=[AcceptedRecord(record_id, _compact(document))],
            record_count=1,
        )

    def _check_credentials(self, headers: Mapping[str, str]) -> None:
        # Messages name the header, never the value sent or expected.
        license_key, api_key = self.settings.license_key, self.settings.api_key
        challenge = (("www-authenticate", 'Bearer realm="killkrill"'),)
        if license_key is not None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _Refused(401, "missing Authorization: Bearer license key", challenge)
            if not _same_secret(token.strip(), license_key):
                raise _Refused(401, "invalid license key", challenge)
        if api_key is not None:
            sent = headers.get("x-api-key")
            if not sent:
                raise _Refused(401, "missing X-API-Key")
            if not _same_secret(sent.strip(), api_key):
                raise _Refused(401, "invalid API key")

    def _check_body_size(self, body: bytes) -> None:
        if len(body) > self.settings.max_body_bytes:
            raise _Refused(413, f"body exceeds {self.settings.max_body_bytes} bytes")

    # control endpoints -------------------------------------------------------------------------

    def _stats(self) -> Respond:
        stats = build_stats(
            self.settings.mode, self._store.counter_rows(), self._store.rejection_rows()
        )
        stats["faults_pending"] = len(self._faults.steps)
        return _json(200, stats)

    def _records(self, query: Mapping[str, list[str]]) -> Respond:
        kind = _query_value(query, "kind")
        if kind is not None and kind not in KINDS:
            return _error(400, "kind must be logs or metrics")
        try:
            after = int(_query_value(query, "after") or 0)
            limit_text = _query_value(query, "limit")
            limit = None if limit_text is None else int(limit_text)
        except ValueError:
            return _error(400, "after and limit must be integers")
        rows = self._store.records(kind, after_seq=after, limit=limit)
        return _json(
            200,
            {
                "records": [
                    {
                        "seq": row.seq,
                        "kind": row.kind,
                        "id": row.record_id,
                        "protocol": row.protocol,
                        "received_at": row.received_at,
                        "record": json.loads(row.record_json),
                    }
                    for row in rows
                ]
            },
        )

    def _requests(self, query: Mapping[str, list[str]]) -> Respond:
        try:
            limit = int(_query_value(query, "limit") or 100)
        except ValueError:
            return _error(400, "limit must be an integer")
        return _json(200, {"requests": self._store.recent_requests(max(limit, 0))})

    def _install_faults(self, body: bytes) -> Respond:
        try:
            script = parse_fault_script(_parse_json(body))
        except (InvalidFaultScript, _Refused) as exc:
            return _error(400, str(exc))
        self._faults.replace(script)
        return _json(200, {"status": "ok", "faults_pending": len(self._faults.steps)})

    def _clear_faults(self) -> Respond:
        self._faults.replace(FaultScript())
        return _json(200, {"status": "ok", "faults_pending": 0})


def _is_content_encoded(header_value: str | None) -> bool:
    """True when Content-Encoding names anything but identity (unknown codings included)."""
    try:
        return bool(parse_codings(header_value))
    except UnsupportedEncoding:
        return True


def _fault_verdict(step: FaultStep) -> _Verdict:
    assert step.status is not None  # callers check; a close step never gets here
    headers: tuple[tuple[str, str], ...] = ()
    if step.retry_after is not None:
        headers = (("retry-after", str(step.retry_after)),)
    document = step.body
    if document is None:
        document = {"status": "error", "error": f"injected fault: status {step.status}"}
    return _Verdict(status=step.status, document=document, headers=headers, error="injected fault")


def _log_entry(request: Request, kind: Kind, now: float) -> dict[str, Any]:
    """Request metadata for ``GET /api/v1/requests``. Credentials are reduced to presence."""
    headers = request.headers
    return {
        "received_at": now,
        "protocol": request.protocol,
        "tls": request.tls,
        "method": request.method,
        "path": request.target,
        "kind": kind,
        "content_type": headers.get("content-type"),
        "content_encoding": headers.get("content-encoding"),
        "body_bytes": len(request.body),
        "idempotency_key": headers.get("idempotency-key"),
        "batch_size": headers.get("x-batch-size"),
        "user_agent": headers.get("user-agent"),
        "cluster_name": headers.get("x-cluster-name"),
        "node_name": headers.get("x-node-name"),
        "authorization": _redacted_authorization(headers.get("authorization")),
        "api_key": REDACTED if "x-api-key" in headers else None,
    }


def _redacted_authorization(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, _ = value.partition(" ")
    # Only a well-formed scheme word is echoed; anything else could be the secret itself.
    return f"{scheme} {REDACTED}" if scheme.isalpha() and len(scheme) <= 16 else REDACTED


def _same_secret(sent: str, expected: str) -> bool:
    return hmac.compare_digest(sent.encode(), expected.encode())


def _parse_json(data: bytes) -> Any:
    def reject_constant(name: str) -> Any:
        # NaN and Infinity are not JSON (RFC 8259 section 6); Python would accept them.
        raise ValueError(f"{name} is not valid JSON")

    try:
        # orjson first: about five times faster, and as strict (it refuses NaN and
        # Infinity, invalid UTF-8 and nesting past 1024). It also refuses a lone surrogate
        # escape (``"\\ud800"``), which is valid JSON text, so the stdlib decides then.
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data.decode("utf-8"), parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Refused(400, "invalid JSON body") from exc


def _compact(document: Any) -> str:
    try:
        return orjson.dumps(document).decode()
    except TypeError:
        # A lone surrogate cannot be UTF-8 (nor be stored as SQLite text): escape it, and
        # with it every non-ASCII character of this one record.
        return json.dumps(document, ensure_ascii=True, separators=(",", ":"))


def _query_value(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _json(status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> Respond:
    return Respond(
        status=status, headers=JSON_HEADERS + headers, body=json.dumps(document).encode()
    )


def _error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Respond:
    return _json(status, {"status": "error", "error": message}, headers)

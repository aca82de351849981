"""Request bodies, compression, headers and idempotency keys (receiver-api.md).

A batch body is assembled from the records' stored JSON bytes inside a fixed envelope, once
per batch; records are never re-serialised. The records come as runs (`RecordRun`: a stored
batch's bodies, each followed by a newline), so the body is the runs' bytes joined with the
newlines turned into commas: a few C-level copies per request, no work per record. The
encoded body is computed once per batch and reused on every retry and on the fallback
protocol, so what the receiver sees for one ``Idempotency-Key`` is byte-for-byte the same.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

from ..types import HttpRequest, Protocol, RecordRun
from .settings import APPLICATION, OutputSettings

__all__ = [
    "EncodedBatch",
    "Envelope",
    "build_request",
    "encode_batch",
    "encode_body",
    "idempotency_key",
]

_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's gzip container (RFC 1952) with a zero mtime, so equal input gives equal bytes."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The bytes around the records of a batch body, built once per output."""

    prefix: bytes
    suffix: bytes = b"]}"

    @classmethod
    def for_settings(cls, settings: OutputSettings) -> Envelope:
        """``{"source": ..., "application": ..., "logs": [`` or ``{"source": ..., "metrics": [``."""
        head: dict[str, str] = {"source": settings.source}
        if settings.kind == "logs":
            head["application"] = APPLICATION
        opening = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
        return cls(prefix=(opening[:-1] + f',"{settings.kind}":[').encode())

    @property
    def overhead(self) -> int:
        """Bytes the envelope adds to the records and their separating commas."""
        return len(self.prefix) + len(self.suffix)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A batch's request payload: the same bytes on every attempt."""

    body: bytes
    """The body as sent (compressed unless the encoding is ``none``)."""
    raw_size: int
    """The uncompressed size."""
    idempotency_key: str


def idempotency_key(runs: Sequence[RecordRun]) -> str:
    """A key derived only from the batch's record ids (in order).

    Identical on every retry and on the fallback protocol; a split half gets its own key,
    because its ids differ (receiver-api.md, "Headers").
    """
    # Ids never contain a newline (the envelope refuses them), so the joined ids are an
    # unambiguous encoding of the list: one join and one hash per batch, not per record.
    # A run holds its ids joined already, so however the records are cut into runs, the
    # same records give the same bytes, hence the same key.
    joined = "\n".join([run.ids for run in runs]).encode()
    return hashlib.blake2b(joined, digest_size=16, person=b"kk-batch-v2").hexdigest()


def encode_body(raw: bytes, encoding: str, level: int | None) -> bytes:
    """``raw`` compressed with ``encoding`` (gzip, zstd or none) at ``level``."""
    if encoding == "gzip":
        compressor = zlib.compressobj(level if level is not None else 6, zlib.DEFLATED, _GZIP_WBITS)
        return compressor.compress(raw) + compressor.flush()
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=level if level is not None else 3).compress(raw)
    if encoding == "none":
        return raw
    raise ValueError(f"unknown encoding {encoding!r}")


def encode_batch(
    runs: Sequence[RecordRun], settings: OutputSettings, envelope: Envelope
) -> EncodedBatch:
    """The body of the records of ``runs``: the envelope around them in batch mode, the
    record as is in single mode (today's receivers keep only the fields they know,
    receiver-api.md)."""
    if settings.mode == "single":
        if sum(run.count for run in runs) != 1:
            raise ValueError("single mode sends exactly one record per request")
        raw = runs[0].bodies[:-1]
    else:
        joined = runs[0].bodies if len(runs) == 1 else b"".join([run.bodies for run in runs])
        # Every record is followed by a newline, and JSON holds none of its own: turned
        # into commas, they separate the records; the last one gives way to the suffix.
        records = memoryview(joined.replace(b"\n", b","))[:-1]
        raw = b"".join((envelope.prefix, records, envelope.suffix))
    body = encode_body(raw, settings.content_encoding, settings.effective_compression_level)
    return EncodedBatch(body=body, raw_size=len(raw), idempotency_key=idempotency_key(runs))


def build_request(
    batch: EncodedBatch, record_count: int, settings: OutputSettings, protocol: Protocol
) -> HttpRequest:
    """The request for ``batch`` over ``protocol``.

    Header names are lower case: they are case-insensitive in HTTP (RFC 9110 section 5.1)
    and HTTP/3 requires lower case on the wire (RFC 9114 section 4.2).
    """
    headers: list[tuple[str, str]] = [("content-type", "application/json")]
    encoding = settings.content_encoding
    if encoding != "none":
        headers.append(("content-encoding", encoding))
    headers.append(("authorization", f"Bearer {settings.license_key}"))
    if settings.api_key:
        headers.append(("x-api-key", settings.api_key))
    headers += [
        ("x-cluster-name", settings.cluster_name),
        ("x-node-name", settings.node_name),
        ("idempotency-key", batch.idempotency_key),
        ("x-batch-size", str(record_count)),
        ("user-agent", settings.user_agent),
    ]
    url = settings.url if protocol is Protocol.H3 else settings.h1_url
    return HttpRequest(url=url, headers=tuple(headers), body=batch.body)

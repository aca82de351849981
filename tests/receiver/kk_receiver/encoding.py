"""Content-Encoding decoding with a bound on the decoded size (zip-bomb protection).

receiver-api.md allows ``gzip`` (the agent's default), ``zstd`` and ``identity`` (or no header).
A list of codings is decoded in reverse order of application (RFC 9110 section 8.4).
Decoding never produces more than ``max_decoded_bytes + 1`` bytes: the extra byte is how the
caller learns that the limit was exceeded without ever inflating the whole bomb.
"""

from __future__ import annotations

import io
import zlib

import zstandard

SUPPORTED_CODINGS = ("gzip", "zstd", "identity")


class UnsupportedEncoding(ValueError):
    """The request names a content coding this receiver does not implement (HTTP 415)."""


class UndecodableBody(ValueError):
    """The body is not valid for its declared content coding (HTTP 400)."""


class DecodedTooLarge(ValueError):
    """The decoded body exceeds the configured limit (HTTP 413)."""


def parse_codings(header_value: str | None) -> list[str]:
    """Split a Content-Encoding value into codings, lower-cased, ``identity`` removed.

    Raises:
        UnsupportedEncoding: for any coding other than gzip, zstd or identity.
    """
    if header_value is None:
        return []
    codings = [part.strip().lower() for part in header_value.split(",") if part.strip()]
    for coding in codings:
        if coding not in SUPPORTED_CODINGS:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {coding!r}")
    return [coding for coding in codings if coding != "identity"]


def decode_body(body: bytes, codings: list[str], max_decoded_bytes: int) -> bytes:
    """Undo ``codings`` (as returned by :func:`parse_codings`), bounded by ``max_decoded_bytes``.

    Raises:
        UndecodableBody: when a layer is corrupt or truncated.
        DecodedTooLarge: when any decoded layer exceeds ``max_decoded_bytes``.
    """
    data = body
    for coding in reversed(codings):
        if coding == "gzip":
            data = _gunzip(data, max_decoded_bytes)
        else:
            data = _unzstd(data, max_decoded_bytes)
    if len(data) > max_decoded_bytes:
        raise DecodedTooLarge(f"decoded body exceeds {max_decoded_bytes} bytes")
    return data


def _gunzip(data: bytes, limit: int) -> bytes:
    # A gzip stream may have several members (RFC 1952 section 2.2); decode them all.
    out = bytearray()
    remaining = data
    while True:
        decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += decoder.decompress(remaining, limit + 1 - len(out))
        except zlib.error as exc:
            raise UndecodableBody(f"invalid gzip data: {exc}") from exc
        if len(out) > limit:
            raise DecodedTooLarge(f"decoded body exceeds {limit} bytes")
        if not decoder.eof:
            if decoder.unconsumed_tail:
                # max_length stopped us exactly at the limit with input left: too large.
                raise DecodedTooLarge(f"decoded body exceeds {limit} bytes")
            raise UndecodableBody("truncated gzip data")
        remaining = decoder.unused_data
        if not remaining:
            return bytes(out)


def _unzstd(data: bytes, limit: int) -> bytes:
    # Two passes. The first one is bounded: stream_reader stops at limit+1 bytes, reads across
    # frames (RFC 8878 allows several) and rejects trailing junk, but it cannot see truncation.
    # Once the total is known to be within the limit, a second full decode is safe and its
    # decompressobj reports whether the last frame was complete.
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    try:
        bounded = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise UndecodableBody(f"invalid zstd data: {exc}") from exc
    if len(bounded) > limit:
        raise DecodedTooLarge(f"decoded body exceeds {limit} bytes")
    if not data:
        raise UndecodableBody("empty zstd body")
    out = bytearray()
    remaining = data
    while remaining:
        decoder = zstandard.ZstdDecompressor().decompressobj()
        try:
            out += decoder.decompress(remaining)
        except zstandard.ZstdError as exc:
            raise UndecodableBody(f"invalid zstd data: {exc}") from exc
        if not decoder.eof:
            raise UndecodableBody("truncated zstd data")
        remaining = decoder.unused_data
    return bytes(out)

"""How a batch row keeps its records' bodies: zstd-compressed when that pays (format 3).

Why. With a row per batch, SQLite's own work per record is small; what costs is the kernel
moving every body byte through the page cache, several times: written to the WAL at
commit, read back and written into the database file by the checkpoint, read again by
delivery, and the pages freed when the row goes. Measured on this project's 2-core machine
with 1 KB log records (2026-12-02), that was about 5 µs of CPU per record, more than half
of the shipper's. JSON log records compress about 15-fold at zstd level 1, for about 0.5 µs
per record to compress and 0.1 to decompress, so the queue moves a fifteenth of the bytes
(and the node's disk sees a fifteenth of the writes).

Format. A row's ``bodies`` column holds either

* the records' JSON, each followed by a newline (every version 2 row, and a batch that
  does not compress), or
* one zstd frame of exactly those bytes, its content size in the frame header.

The first four bytes tell which: a zstd frame starts with the magic number ``28 B5 2F FD``,
and bodies that happen to start with it are always stored compressed (a JSON record starts
with ``{``, so that never happens with real records; the 2 -> 3 migration compresses any
version 2 row that does, so the rule holds for every row).

A batch that does not compress at least by half (random payloads: tokens, already
compressed data) is kept as it is, decided on a sample, so it costs only the sample's
compression.
"""

from __future__ import annotations

import zstandard

__all__ = ["ZSTD_MAGIC", "BodiesCodec"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""The first four bytes of every zstd frame (RFC 8878 section 3.1.1)."""

LEVEL = 1
"""zstd level of stored bodies: the cheapest of the usual levels; the wire has its own."""

SAMPLE_BYTES = 16 * 1024
"""How much of a batch is compressed first to decide whether compressing it pays."""

WORTH_IT = 1 / 2
"""Compress only if the sample shrinks to this share of its size or less. Measured: the
queue's kernel work is about 5 ns per stored byte, zstd about 1-2 ns per byte to compress
and decompress text of high entropy; random alphanumeric messages (3/4 after compression)
cost 2.5 µs more per 2 KB record compressed than kept. Log records shrink 10- to 16-fold."""


class BodiesCodec:
    """Packs bodies for a row and unpacks them. Not thread-safe (the queue's is not either):
    its compressor and decompressor are reused, one per queue."""

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor(level=LEVEL)
        self._decompressor = zstandard.ZstdDecompressor()

    def pack(self, bodies: bytes) -> bytes:
        """What to store for ``bodies`` (see the module docstring)."""
        sample = bodies[:SAMPLE_BYTES]
        packed_sample = self._compressor.compress(sample)
        if len(packed_sample) > len(sample) * WORTH_IT and not bodies.startswith(ZSTD_MAGIC):
            return bodies
        if len(sample) == len(bodies):
            return packed_sample
        return self._compressor.compress(bodies)

    def unpack(self, stored: bytes) -> bytes:
        """The bodies a row holds.

        Raises:
            zstandard.ZstdError: a compressed row is damaged (the queue reports it as
                corruption of its file).
        """
        if stored.startswith(ZSTD_MAGIC):
            return self._decompressor.decompress(stored)
        return stored

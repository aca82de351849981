"""File identity: which physical file a byte offset belongs to, across renames.

A file is identified by its device and inode, which follow it through a rename (kubelet
rotation), plus a *fingerprint* of its first bytes, which tells a new file apart from an
old one whose inode number the filesystem handed out again after deletion.

The fingerprint covers the file's first line, capped at `FINGERPRINT_MAX_BYTES`: the bytes
up to and including the first ``\\n`` if that comes within the first 256 bytes, otherwise
the first 256 bytes. In an append-only file that prefix never changes once it exists, so
the identity's string `FileIdentity.key` is stable for the file's whole life and can be
recomputed after a restart: it names the file in record ids
(`kk_common.envelope.log_record_id`) and in the offset store. (A fingerprint of "the
first up to 256 bytes, growing" would change while a young file grows, and with it every
record id.) Container runtimes write whole lines that start with a nanosecond timestamp,
so a file's first line is unique in practice; a file whose first line is not complete yet
is not identified (and not read) until it is, or until it is deleted, when whatever it
holds becomes final (`final=True`).

*Generations.* A file truncated in place (copytruncate) and rewritten keeps its device
and inode, and may well start with the same first line again (a fixed banner, say). Its
new content must not take the old content's key: record ids and the shipper's duplicate
check are made of ``(key, offset)``, so the new lines would pass for lines already sent
and be dropped. The tailer therefore gives each rewrite of one ``(dev, ino, fingerprint)``
the next *generation*, a suffix of the key (none for generation 0, so the keys of files
never rewritten are what they always were).

This module does no IO except `read_head`, a single ``pread``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

__all__ = [
    "FINGERPRINT_MAX_BYTES",
    "FileIdentity",
    "fingerprint",
    "fingerprint_length",
    "identify",
    "key_fingerprint",
    "read_head",
]

FINGERPRINT_MAX_BYTES = 256
"""The longest prefix a fingerprint covers."""


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """One physical file: device, inode and a fingerprint of its first line.

    Two identities are the same file when their `key` is equal; ``head_len`` (how many
    bytes the fingerprint covers) is kept so the tailer can re-check the prefix cheaply.
    """

    dev: int
    ino: int
    fingerprint: str
    """Hex digest of the first ``head_len`` bytes (see `fingerprint`)."""
    head_len: int
    generation: int = 0
    """How many times this file was rewritten in place with the same first line."""

    @property
    def key(self) -> str:
        """The stable string form: ``<dev hex>.<inode hex>.<fingerprint>[.<generation hex>]``."""
        base = f"{self.dev:x}.{self.ino:x}.{self.fingerprint}"
        return f"{base}.{self.generation:x}" if self.generation else base

    def with_generation(self, generation: int) -> FileIdentity:
        """The same file at another generation."""
        return FileIdentity(self.dev, self.ino, self.fingerprint, self.head_len, generation)

    def __str__(self) -> str:
        return self.key


def fingerprint_length(head: bytes, *, final: bool = False) -> int | None:
    """How many bytes of ``head`` (a file's first bytes) the fingerprint covers.

    Returns ``None`` while the prefix can still change: no ``\\n`` yet and fewer than
    `FINGERPRINT_MAX_BYTES` bytes. With ``final`` (the file was deleted, nothing more
    will come) any non-empty head is used as it is; an empty file has no identity.
    """
    newline = head.find(b"\n", 0, FINGERPRINT_MAX_BYTES)
    if newline >= 0:
        return newline + 1
    if len(head) >= FINGERPRINT_MAX_BYTES:
        return FINGERPRINT_MAX_BYTES
    if final and head:
        return len(head)
    return None


def fingerprint(prefix: bytes) -> str:
    """The fingerprint of a file's first bytes: a 64-bit BLAKE2b digest, in hex.

    64 bits is plenty: the fingerprint only has to tell apart files that share a
    device and inode number, not all files in the world.
    """
    return hashlib.blake2b(prefix, digest_size=8).hexdigest()


def identify(dev: int, ino: int, head: bytes, *, final: bool = False) -> FileIdentity | None:
    """The identity of the file ``(dev, ino)`` whose first bytes are ``head``, if it has one yet."""
    length = fingerprint_length(head, final=final)
    if length is None:
        return None
    return FileIdentity(dev, ino, fingerprint(head[:length]), length)


def key_fingerprint(key: str) -> str | None:
    """The fingerprint part of a `FileIdentity.key` (``None`` if ``key`` is not one)."""
    parts = key.split(".")
    return parts[2] if len(parts) in (3, 4) else None


def read_head(fd: int, length: int = FINGERPRINT_MAX_BYTES) -> bytes:
    """Read a file's first ``length`` bytes without moving its file position."""
    return os.pread(fd, length, 0)

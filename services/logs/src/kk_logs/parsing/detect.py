"""Per-file format detection: CRI or docker json-file, from the first recognisable line.

A node runs one runtime, but a node migrated from dockershim to containerd can hold
both kinds of file, so the format is decided per file. The first complete physical
line that parses as CRI or as docker json-file decides; a line that is neither (garbage
at the head of a file) is emitted as a parse error and the next line is tried, so
detection never drops or holds back data and does not depend on how the file was
chunked.
"""

from __future__ import annotations

from typing import Literal

from kk_logs.parsing.cri import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_PARTIAL_TIMEOUT_S,
    CriLineParser,
    Decoded,
    LineParser,
    decode_cri_line,
)
from kk_logs.parsing.docker import DockerJsonParser, decode_docker_line
from kk_logs.parsing.lines import Line, LogFormat
from kk_logs.parsing.plain import PlainTextParser

__all__ = ["AutoLineParser", "detect_format", "make_parser"]


def detect_format(raw: bytes) -> LogFormat | None:
    """The format of one physical line (without ``\\n``), or None if it is neither."""
    if raw[:1] == b"{":
        return LogFormat.DOCKER if not decode_docker_line(raw)[5] else None
    return LogFormat.CRI if not decode_cri_line(raw)[5] else None


class AutoLineParser(LineParser):
    """A `LineParser` that picks CRI or docker json-file from the file's first good line.

    `format` is None until then.
    """

    # Until the first good line decides, every line goes through `_detect`.
    codec = CriLineParser.codec

    def __init__(
        self,
        *,
        offset: int = 0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        partial_timeout_s: float = DEFAULT_PARTIAL_TIMEOUT_S,
    ) -> None:
        super().__init__(
            offset=offset, max_line_bytes=max_line_bytes, partial_timeout_s=partial_timeout_s
        )
        self.format = None
        self._decode = self._detect

    def feed(self, data: bytes, offset: int, *, now: float | None = None) -> list[Line]:
        """`LineParser.feed`, one complete line at a time until the format is known.

        Then the rest of the chunk goes the chosen format's way, so a CRI file's first
        chunk is read per buffer too ("CRI per buffer" in `kk_logs.parsing.cri`).
        """
        if self.format is not None:
            return super().feed(data, offset, now=now)
        if not isinstance(data, bytes):
            data = bytes(data)
        out: list[Line] = []
        start = 0  # where the next line begins in data
        while self.format is None:
            cut = data.find(b"\n", start) + 1
            if not cut:
                break
            out += super().feed(data[start:cut], offset + start, now=now)
            start = cut
        return out + super().feed(data[start:] if start else data, offset + start, now=now)

    def _detect(self, raw: bytes) -> Decoded:
        if self.format is None:
            found = detect_format(raw)
            if found is None:
                return ("", "", "", False, b"", "unknown_format", False)
            self.format = found
            chosen = DockerJsonParser if found is LogFormat.DOCKER else CriLineParser
            self._decode, self._text, self._join = chosen.codec
        return self._decode(raw)


def make_parser(
    log_format: Literal["auto", "cri", "docker", "plain"] | LogFormat = "auto",
    *,
    offset: int = 0,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    partial_timeout_s: float = DEFAULT_PARTIAL_TIMEOUT_S,
) -> LineParser:
    """A parser for one file: ``auto`` detects CRI or docker, the others force a format."""
    kinds: dict[str, type[LineParser]] = {
        "plain": PlainTextParser,
        "auto": AutoLineParser,
        "cri": CriLineParser,
        "docker": DockerJsonParser,
    }
    try:
        kind = kinds[str(log_format)]
    except KeyError:
        raise ValueError(f"unknown log format {log_format!r}") from None
    return kind(offset=offset, max_line_bytes=max_line_bytes, partial_timeout_s=partial_timeout_s)

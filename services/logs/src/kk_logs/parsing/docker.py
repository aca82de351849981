"""docker json-file log parsing.

dockerd's json-file driver writes one JSON object per physical line::

    {"log":"GET / 200\\n","stream":"stdout","time":"2026-11-26T10:00:00.123456789Z"}

``log`` is the container's output including its ``\\n``. dockerd cuts lines longer than
16 KiB into several entries (moby ``daemon/logger/copier.go``, ``bufSize``); only the last
entry's ``log`` ends in ``\\n``. So an entry without a trailing ``\\n`` is a partial that
the next entry *of the same stream* continues: exactly CRI's ``P``/``F`` model, and the
same assembly engine (`kk_logs.parsing.cri.LineParser`) joins them. We follow the
newline, not the size, so other split sizes work too. The last output of a container that
exits without a final newline also looks like a partial; `LineParser.flush` emits it
after the partial timeout, flagged ``partial_unterminated``. For this format the
parser's ``max_line_bytes`` counts decoded characters (the content is already text).

dockerd's JSON encoder writes invalid UTF-8 in the container's output as U+FFFD, so
the content is already valid text; invalid bytes in the *file* (corruption) or lone
surrogate escapes (``"\\ud800"``) are replaced too, and flagged, because the shipper
must be able to encode every record as UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from kk_logs.parsing.cri import (
    Decoded,
    LineParser,
)
from kk_logs.parsing.lines import LogFormat
from kk_logs.parsing.timestamps import normalize_timestamp

__all__ = ["DockerJsonParser", "decode_docker_line"]

_loads = json.loads


def _error(reason: str) -> Decoded:
    return ("", "", "", False, "", reason, False)


def _clean(text: str) -> tuple[str, bool]:
    """``text`` with lone surrogates replaced (they cannot be encoded as UTF-8)."""
    if text.isascii():
        return text, False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"), True
    return text, False


def decode_docker_line(raw: bytes) -> Decoded:
    """Decode one docker json-file physical line (without its ``\\n``).

    The line must be a JSON object with a string ``log``, a ``stream`` of ``stdout`` or
    ``stderr`` and a valid RFC 3339 ``time``; otherwise it is a parse error
    (``docker_json``, ``docker_log``, ``docker_stream``, ``docker_timestamp``). Other keys
    (``attrs``) are ignored.
    """
    try:
        text = raw.decode("utf-8")
        bad = False
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        bad = True
    try:
        obj = _loads(text)
    except (ValueError, RecursionError):
        # RecursionError: a deeply nested line (a corrupt or foreign file; dockerd never
        # writes one) must be one bad line, not the end of the service.
        return _error("docker_json")
    if not isinstance(obj, dict):
        return _error("docker_json")
    log = obj.get("log")
    if not isinstance(log, str):
        return _error("docker_log")
    stream = obj.get("stream")
    if stream != "stdout" and stream != "stderr":
        return _error("docker_stream")
    raw_ts = obj.get("time")
    ts = normalize_timestamp(raw_ts) if isinstance(raw_ts, str) else None
    if ts is None:
        return _error("docker_timestamp")
    partial = not log.endswith("\n")
    if not partial:
        log = log[:-1]
    log, surrogates = _clean(log)
    return (stream, raw_ts, ts, partial, log, "", bad or surrogates)


def _str_text(content: str) -> tuple[str, bool]:
    return content, False


def _str_join(parts: Sequence[str]) -> tuple[str, bool]:
    return "".join(parts), False


class DockerJsonParser(LineParser):
    """`LineParser` for docker json-file logs; entries without a trailing ``\\n`` are joined."""

    format = LogFormat.DOCKER
    codec = (decode_docker_line, _str_text, _str_join)

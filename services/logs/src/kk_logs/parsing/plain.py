"""Plain text lines, for node-level system logs (``/var/log/syslog``, ``/var/log/messages``).

Every physical line is one `Line` of stream ``system`` with its bytes as content; there is
no runtime timestamp (the record gets the read time) and nothing to join. The shared
`LineParser` engine still gives safe offsets, incomplete-tail handling and the
oversize-piece rule.
"""

from __future__ import annotations

from kk_logs.parsing.cri import Decoded, LineParser, _bytes_join, _bytes_text
from kk_logs.parsing.lines import LogFormat

__all__ = ["PlainTextParser", "decode_plain_line"]


def decode_plain_line(raw: bytes) -> Decoded:
    """One system-log line: content as it is, no stream tag, no timestamp, never partial."""
    return ("system", "", "", False, raw, "", False)


class PlainTextParser(LineParser):
    """A `LineParser` for plain text files."""

    format = LogFormat.PLAIN
    codec = (decode_plain_line, _bytes_text, _bytes_join)

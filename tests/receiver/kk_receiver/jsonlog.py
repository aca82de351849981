"""JSON-lines logging on stderr, configured once by the command line (never at import time).

Call sites pass structured fields as ``extra={"fields": {...}}``. Nothing logs headers or
request bodies, so credentials cannot reach a log line.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``event`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        line = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "info") -> None:
    """Send every log record to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aioquic logs every connection at INFO; its warnings are still useful.
    logging.getLogger("quic").setLevel(logging.WARNING)

"""Structured JSON logs on stdout, one object per line, with the same fields everywhere.

Every line carries ``ts`` (RFC 3339 UTC), ``level``, ``component``, ``node``, ``event``
(a stable snake_case name an operator can alert on) and ``logger``, plus the event's
own fields. Code logs through `log_event`; `configure_logging` is called once by each
service's entry point, never at import time. A library's own log record (aioquic, asyncio,
...) is not an event of ours: it becomes ``event: "library_log"`` with its text in
``message``, so free text never lands where alerts match names.

Secrets: configuration values are never logged, but as a second line of defence every
value registered with `configure_logging(secrets=...)` is replaced by ``[REDACTED]``
wherever it appears in a line, in any of its escaped or encoded forms (`kk_common.redact`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from kk_common.redact import Redactor

__all__ = ["TRACE", "JsonFormatter", "configure_logging", "log_event", "parse_level"]

TRACE = 5
"""A level below DEBUG for per-record detail."""
logging.addLevelName(TRACE, "TRACE")

_LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_NAMES = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}

_FIELDS_ATTR = "kk_fields"
# Libraries whose debug output is per packet or per connection; they log at warn and above
# unless the agent runs at trace level.
_CHATTY_LIBRARIES = ("aioquic", "quic", "asyncio", "httpx", "httpcore", "kubernetes", "urllib3")
# aioquic warns once per failed connection ("Error: 298, reason: unable to get local issuer
# certificate"); the agent's transport reports the same failure as its own event, so below
# trace level only its errors are shown.
_REPORTED_BY_CALLER = ("aioquic", "quic")
_LIBRARY_EVENT = "library_log"


def parse_level(name: str) -> int:
    """The logging level of a ``LOG_LEVEL`` value (``trace`` … ``error``)."""
    try:
        return _LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {name!r}; expected one of {', '.join(sorted(_LEVELS))}"
        ) from None


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (JSON-serialisable values)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS_ATTR: fields}, stacklevel=2)


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object per line."""

    def __init__(self, component: str, node: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._component = component
        self._node = node
        self._redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": _NAMES.get(record.levelno, record.levelname.lower()),
            "component": self._component,
            "node": self._node,
            "event": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, _FIELDS_ATTR, None)
        if fields is None:
            line["event"] = _LIBRARY_EVENT
            line["message"] = record.getMessage()
        elif fields:
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(line, ensure_ascii=False, default=str))


def configure_logging(
    *,
    component: str,
    node: str,
    level: str | int = "info",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Send every log line of this process as JSON to ``stream`` (stdout by default)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(component, node, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = parse_level(level) if isinstance(level, str) else level
    root.setLevel(numeric)
    for name in _CHATTY_LIBRARIES:
        floor = logging.ERROR if name in _REPORTED_BY_CALLER else logging.WARNING
        logging.getLogger(name).setLevel(numeric if numeric <= TRACE else max(numeric, floor))

"""The value types of the config model, each with the one message it gives when wrong.

Every type here is an ``Annotated`` pydantic type whose validator raises a
:class:`~pydantic_core.PydanticCustomError` with a complete, human message ("expected a whole
number greater than 0, got 'abc'"). The loader passes that message through unchanged, so
the wording of every value error lives in this one module. Secret types never put the
input into their message.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, SecretStr
from pydantic_core import PydanticCustomError

from .messages import show_value
from .units import DURATION_EXPECTED, SIZE_EXPECTED, UnitError, parse_duration, parse_size

__all__ = [
    "CUSTOM_ERROR_TYPE",
    "LICENSE_KEY_FORMAT",
    "AbsolutePath",
    "ApiKey",
    "HttpUrl",
    "IpAddress",
    "LicenseKey",
    "LogLevel",
    "NonEmptyText",
    "Port",
    "PositiveInt",
    "Seconds",
    "SecondsOrZero",
    "SizeBytes",
]

CUSTOM_ERROR_TYPE = "kk_config"
"""The pydantic error type of every message built here; the loader uses ``msg`` as is."""


def _problem(message: str) -> PydanticCustomError:
    # The message goes in as context, not as the template, so "{" and "}" in it are safe.
    return PydanticCustomError(CUSTOM_ERROR_TYPE, "{message}", {"message": message})


def _positive_int(value: Any) -> int:
    expected = "expected a whole number greater than 0"
    number: int | None = None
    # bool is an int subclass; `batch_size: true` is a mistake, not 1.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        # Strings arrive from ${VAR} expansion: `batch_size: ${BATCH:-1000}`.
        number = int(value.strip())
    if number is None or number <= 0:
        raise _problem(f"{expected}, got {show_value(value)}")
    return number


def _port(value: Any) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 0 <= number <= 65535:
        raise _problem(f"expected a TCP port from 0 to 65535, got {show_value(value)}")
    return number


def _seconds(value: Any) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise _problem(f"expected a duration greater than zero, got {show_value(value)}")
    return seconds


def _duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _problem(
            "expected a duration with a unit (ms, s, m or h), "
            f"got {show_value(value)}; write e.g. '{value}s'"
        )
    if not isinstance(value, str):
        raise _problem(f"{DURATION_EXPECTED}, got {show_value(value)}")
    try:
        seconds = parse_duration(value)
    except UnitError as error:
        hint = f"; {error.hint}" if error.hint else ""
        raise _problem(f"{error.expected}, got {show_value(value)}{hint}") from None
    return seconds


def _size_bytes(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _problem(
            "expected a size with a unit (B, KB, MB, GB = 1000-based; KiB, MiB, GiB = 1024-based), "
            f"got {show_value(value)}; write '{value}B' for bytes or e.g. '32MB'"
        )
    if not isinstance(value, str):
        raise _problem(f"{SIZE_EXPECTED}, got {show_value(value)}")
    try:
        size = parse_size(value)
    except UnitError as error:
        hint = f"; {error.hint}" if error.hint else ""
        raise _problem(f"{error.expected}, got {show_value(value)}{hint}") from None
    if size <= 0:
        raise _problem(f"expected a size greater than zero, got {show_value(value)}")
    return size


def _http_url(value: Any) -> str:
    expected = "expected an http:// or https:// URL with a host"
    if not isinstance(value, str):
        raise _problem(f"{expected}, got {show_value(value)}")
    try:
        parts = urlsplit(value)
        port_is_valid = parts.port is None or parts.port > 0
    except ValueError:  # urlsplit raises for a bad port or a broken IPv6 literal
        parts, port_is_valid = None, False
    if parts is not None and (parts.username is not None or parts.password is not None):
        # Don't echo it: the user:password part is a credential.
        raise _problem(
            f"{expected} and no user:password@ part (the value is not shown); "
            "receivers authenticate with the license key"
        )
    if (
        parts is None
        or not port_is_valid
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or value != value.strip()
    ):
        raise _problem(f"{expected}, got {show_value(value)}")
    return value


def _absolute_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _problem(f"expected an absolute path (starting with '/'), got {show_value(value)}")
    return value


def _ip_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value.strip() if isinstance(value, str) else ""))
    except ValueError:
        raise _problem(f"expected an IP address, got {show_value(value)}") from None


def _non_empty_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem(f"expected a non-empty string, got {show_value(value)}")
    return value


LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


def _log_level(value: Any) -> str:
    level = value.strip().lower() if isinstance(value, str) else None
    level = "warn" if level == "warning" else level
    if level not in LOG_LEVELS:
        raise _problem(
            f"expected one of trace, debug, info, warn (or warning), error, got {show_value(value)}"
        )
    return level


LICENSE_KEY_FORMAT = "PENG-XXXX-XXXX-XXXX-XXXX-XXXX (X = uppercase letter or digit)"
_LICENSE_KEY = re.compile(r"PENG(?:-[A-Z0-9]{4}){5}")


def _license_key(value: Any) -> str:
    # Surrounding whitespace is dropped: `echo KEY | kubectl create secret` adds a newline.
    key = value.strip() if isinstance(value, str) else ""
    if not _LICENSE_KEY.fullmatch(key):
        raise _problem(f"expected a license key of the form {LICENSE_KEY_FORMAT}; not shown")
    return key


def _api_key(value: Any) -> str:
    key = value.strip() if isinstance(value, str) else ""
    if not key:
        raise _problem("expected a non-empty API key; not shown")
    if not all(" " <= char <= "~" for char in key):
        # It goes into an X-API-Key header: a CR, LF or NUL would be refused by the HTTP
        # stack (whose error text then quotes the key) or split the header.
        raise _problem(
            "the API key contains a character a header cannot carry (a control character "
            "such as CR, LF or NUL, or a non-ASCII one); not shown"
        )
    return key


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]

Port = Annotated[int, BeforeValidator(_port)]
"""A TCP port; 0 asks the system for a free one (tests)."""
"""A whole number > 0 (YAML int, or a digit string from ``${VAR}`` expansion)."""
Seconds = Annotated[float, BeforeValidator(_seconds)]
"""A duration > 0 written with units (``'5s'``, ``'1m30s'``), held as float seconds."""
SecondsOrZero = Annotated[float, BeforeValidator(_duration)]
"""A duration >= 0 written with units (``'0s'`` allowed), held as float seconds."""
SizeBytes = Annotated[int, BeforeValidator(_size_bytes)]
"""A size > 0 written with units (``'32MB'`` = 32e6, ``'32MiB'`` = 32 * 2**20), in bytes."""
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
"""An ``http://`` or ``https://`` URL with a host, kept exactly as written (no added ``/``)."""
AbsolutePath = Annotated[str, BeforeValidator(_absolute_path)]
"""A filesystem path (or glob) inside the container, starting with ``/``."""
IpAddress = Annotated[str, BeforeValidator(_ip_address)]
"""An IPv4 or IPv6 address, held in its canonical text form."""
NonEmptyText = Annotated[str, BeforeValidator(_non_empty_text)]
"""A string with at least one non-blank character."""
LogLevel = Annotated[
    Literal["trace", "debug", "info", "warn", "error"], BeforeValidator(_log_level)
]
"""A log level, case-insensitive; ``warning`` is read as ``warn``."""
LicenseKey = Annotated[SecretStr, BeforeValidator(_license_key)]
"""The PenguinTech license key; never shown in messages, reprs or dumps."""
ApiKey = Annotated[SecretStr, BeforeValidator(_api_key)]
"""An optional receiver API key; never shown in messages, reprs or dumps."""

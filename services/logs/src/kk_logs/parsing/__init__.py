"""Sans-IO parsing of container log files: bytes in, `Line` objects out.

No file IO, no asyncio and no clock in this package: the tailer feeds bytes with their
file offsets and passes times in. See `kk_logs.parsing.cri` for the theory of operation.
"""

from kk_logs.parsing.cri import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_PARTIAL_TIMEOUT_S,
    CriLineParser,
    LineParser,
    decode_cri_line,
)
from kk_logs.parsing.detect import AutoLineParser, detect_format, make_parser
from kk_logs.parsing.docker import DockerJsonParser, decode_docker_line
from kk_logs.parsing.levels import detect_level, normalize_level
from kk_logs.parsing.lines import (
    FLAG_INVALID_UTF8,
    FLAG_NO_NEWLINE,
    FLAG_OVERSIZE,
    FLAG_PARSE_ERROR,
    FLAG_PARTIAL_UNTERMINATED,
    STREAM_UNKNOWN,
    Line,
    LogFormat,
    ParserStats,
)
from kk_logs.parsing.timestamps import normalize_timestamp

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_PARTIAL_TIMEOUT_S",
    "FLAG_INVALID_UTF8",
    "FLAG_NO_NEWLINE",
    "FLAG_OVERSIZE",
    "FLAG_PARSE_ERROR",
    "FLAG_PARTIAL_UNTERMINATED",
    "STREAM_UNKNOWN",
    "AutoLineParser",
    "CriLineParser",
    "DockerJsonParser",
    "Line",
    "LineParser",
    "LogFormat",
    "ParserStats",
    "decode_cri_line",
    "decode_docker_line",
    "detect_format",
    "detect_level",
    "make_parser",
    "normalize_level",
    "normalize_timestamp",
]

"""No log line can stop collection: arbitrary bytes and arbitrarily nested JSON go through
the logs service's record path (parse, level detection, record build, envelope) without an
exception, and every line becomes exactly one record carrying its text.

Profiles as in ``test_parser_fuzz.py``: ``ci`` (default) and ``full`` (``KK_TEST_PROFILE``).
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from kk_logs.app import LogsService
from tests.hypothesis_profiles import profile
from tests.logs.test_service_records import TS, cri, feed, records
from tests.logs.test_service_records import service as service  # the fixture, re-exported

PROFILE = profile("kk-logs-service", ci=150, full=3000)


def nested(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "[":
        return ("[" * depth + "]" * depth).encode()
    return ('{"a":' * depth + "1" + closer * depth).encode()


line_content = st.one_of(
    # Arbitrary bytes (invalid UTF-8 included), as a broken program writes them.
    st.binary(max_size=400).map(lambda b: b.replace(b"\n", b" ")),
    # JSON nested deeper than any parser's recursion limit, and just below it.
    st.integers(min_value=1, max_value=3000).map(lambda d: b'{"a":' + nested(d) + b"}"),
    st.integers(min_value=1, max_value=1200).map(lambda d: nested(d, "{")),
    # JSON-looking lines with a level somewhere inside.
    st.builds(
        lambda level, junk: json.dumps({"level": level, "msg": junk}).encode(),
        st.sampled_from(["error", "WARN", "fatal", "", "\u0000", "debug\n"]),
        st.text(max_size=50),
    ),
)


class FileEnd:
    """Where the next chunk of the one growing file starts (examples share the service)."""

    offset = 0


@PROFILE
@given(contents=st.lists(line_content, min_size=1, max_size=8))
def test_any_line_content_becomes_one_record_and_never_raises(
    service: LogsService, contents: list[bytes]
) -> None:
    data = b"".join(cri("stdout", "F", "")[:-1] + content + b"\n" for content in contents)
    start = FileEnd.offset
    FileEnd.offset += len(data)

    messages = feed(service, start, data)

    shipped = [record for message in messages for record in records(message)]
    assert len(shipped) == len(contents)
    for record, content in zip(shipped, contents, strict=True):
        text = content.decode("utf-8", "replace")
        # A CRLF-writing program's trailing CR is not part of the message (records.py).
        assert record["message"] == (text[:-1] if text.endswith("\r") else text)
        assert record["timestamp"].startswith(TS[:19])
        assert record["log_level"] in {"trace", "debug", "info", "warn", "error", "fatal"}

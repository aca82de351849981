"""Coverage-guided fuzz targets (atheris + libFuzzer) for every parser and decoder.

Run them: ``python tests/reliability/input_atheris_targets.py -runs=20000`` (every target in
one process, the first input byte choosing) or one, with ``KK_ATHERIS_TARGET=cri``; any
libFuzzer flag works (``-max_total_time=600``, a corpus directory). A target accepts
the errors its parser documents and lets anything else escape, which libFuzzer reports as a
crash with the input that caused it (exit code 1, the input saved as ``crash-<hash>``).
"""

from __future__ import annotations

import os
import sys

import atheris

# Only our packages: instrumenting pydantic, yaml and prometheus_client too costs seconds
# of start-up for coverage of code that is not ours to fix.
with atheris.instrument_imports(include=["kk_common", "kk_logs", "kk_metrics"]):
    import orjson

    from kk_common.config import ConfigError, parse_config
    from kk_common.envelope import EnvelopeError, decode
    from kk_logs.parsing import AutoLineParser, CriLineParser, DockerJsonParser
    from kk_metrics.errors import ScrapeError
    from kk_metrics.exposition import parse_exposition
    from kk_metrics.scrape import ScrapeContext, process_samples
    from kk_metrics.sources.summary import summary_samples

CONTEXT = ScrapeContext("fuzz", "fuzz", "node-a", "c1", 1_795_687_200.0, 100_000, 50)
ENVIRONMENT = {
    "NODE_NAME": "node-a",
    "KILLKRILL_LICENSE_KEY": "PENG-S3NT-1NEL-K3YS-0000-0001",
    "KILLKRILL_LOG_RECEIVER_URL": "https://rx:8443",
    "KILLKRILL_METRICS_RECEIVER_URL": "https://rx:8443",
}
PARSERS = (CriLineParser, DockerJsonParser, AutoLineParser)


def log_lines(data: bytes) -> None:
    """Every byte ends up in exactly one line, however the input is chunked."""
    if not data:
        return
    kind, max_line, cut = PARSERS[data[0] % 3], 1 + data[-1], len(data) // 2
    parser = kind(max_line_bytes=max_line)
    lines = parser.feed(data[:cut], 0) + parser.feed(data[cut:], cut)
    lines += parser.flush_all()
    position = 0
    for start, end in sorted(span for line in lines for span in line.spans):
        if start != position or end <= start:
            raise AssertionError(f"spans do not tile the input at {position}: {start}-{end}")
        position = end
    if position != len(data):
        raise AssertionError(f"{len(data) - position} bytes not accounted for")


def exposition(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        process_samples(parse_exposition(text.splitlines(keepends=True)), CONTEXT, lambda b: None)
    except ScrapeError as refused:
        assert str(refused)


def summary(data: bytes) -> None:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    try:
        process_samples(summary_samples(document), CONTEXT, lambda b: None)
    except ScrapeError as refused:
        assert str(refused)


def envelope(data: bytes) -> None:
    try:
        decode(data.split(b"\x00", 2))
    except EnvelopeError as refused:
        assert str(refused)


def config(data: bytes) -> None:
    try:
        parse_config(data.decode("utf-8", "replace"), ENVIRONMENT)
    except ConfigError as refused:
        assert all(problem.path and problem.message for problem in refused.problems)


TARGETS = {
    "cri": log_lines,
    "exposition": exposition,
    "summary": summary,
    "envelope": envelope,
    "config": config,
}


def every_target(data: bytes) -> None:
    """One process for all: the first byte picks the target, libFuzzer learns which."""
    if data:
        list(TARGETS.values())[data[0] % len(TARGETS)](data[1:])


def main() -> None:
    name = os.environ.get("KK_ATHERIS_TARGET", "all")
    target = every_target if name == "all" else TARGETS[name]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""The CRI parser against log files written by a real containerd 1.6 + runc.

The unit tests in ``test_parsing_cri.py`` feed hand-written CRI lines; these run real
containers (`tests.logs.containerd_support`) so that the splits, the stream interleaving
and the rotation behaviour are containerd's own, not our idea of them. They skip, with
the harness's reason, where containerd cannot run (not root, packages missing); set
``KK_REQUIRE_CONTAINERD=1`` to turn that skip into a failure (e.g. on CI, which is root).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from kk_logs.parsing import Line, make_parser
from tests.logs.containerd_support import (
    ContainerdHarness,
    ContainerdUnavailable,
    Pod,
    new_uid,
    wait_until,
)

LONG = 40_000
"""The recipe's long line: containerd cuts it into P 16384 / P 16384 / F 7232 bytes."""


@pytest.fixture(scope="module")
def containerd() -> Iterator[ContainerdHarness]:
    """One containerd (and one image import) for the module; skipped if unavailable."""
    with contextlib.ExitStack() as stack:
        try:
            harness = stack.enter_context(ContainerdHarness())
        except ContainerdUnavailable as exc:
            if os.environ.get("KK_REQUIRE_CONTAINERD") == "1":
                pytest.fail(f"containerd unavailable but KK_REQUIRE_CONTAINERD=1: {exc}")
            pytest.skip(f"containerd unavailable: {exc}")
        yield harness


@pytest.fixture(scope="module")
def log_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's stand-in for ``/var/log/pods``."""
    return tmp_path_factory.mktemp("pods")


def parse(data: bytes, chunks: Iterator[int]) -> tuple[list[Line], int]:
    """Feed ``data`` to a fresh CRI parser in chunks of the given sizes, then flush.

    Returns the lines and the parser's final safe offset.
    """
    parser = make_parser("cri")
    lines: list[Line] = []
    offset = 0
    while offset < len(data):
        size = next(chunks)
        lines += parser.feed(data[offset : offset + size], offset, now=0.0)
        offset += size
    lines += parser.flush_all()
    return lines, parser.safe_offset


def fixed(size: int) -> Iterator[int]:
    """Chunks of one size forever."""
    while True:
        yield size


def random_sizes(seed: int) -> Iterator[int]:
    """Seeded random chunk sizes from 1 byte to a bit over containerd's 16 KiB split."""
    rng = random.Random(seed)
    while True:
        yield rng.randint(1, 17_000)


def raw_records(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """``(stream, tag, content length)`` of each physical line, straight from the file."""
    out = []
    for raw in data.split(b"\n")[:-1]:
        _ts, stream, tag, *rest = raw.split(b" ", 3)
        out.append((stream, tag, len(rest[0]) if rest else 0))
    return out


# --------------------------------------------------------------------------- content

# The shell builds every line from busybox applets (`yes`, `tr`, `head`); the Python
# below builds the same bytes, so the comparison is byte for byte without shipping data.
# stdout and stderr are written concurrently (a background subshell), so containerd's
# two copiers interleave their records, partials included, in the one file; within a
# stream the order is fixed.
_STDOUT_SH = (
    'i=0; while [ $i -lt 200 ]; do echo "out $i"; i=$((i+1)); done; '
    f"yes abcdefghij | tr -d '\\n' | head -c {LONG}; echo; "
    # Around the 16 KiB split size: just under, exactly at, just over, two splits.
    "for n in 16383 16384 16385 32768; do head -c $n /dev/zero | tr '\\0' a; echo; done; "
    "echo; printf 'tab\\there \\rx  \\r\\n'; echo 'out end'"
)
_STDERR_SH = (
    'i=0; while [ $i -lt 200 ]; do echo "err $i"; i=$((i+1)); done; '
    f"yes 0123456789 | tr -d '\\n' | head -c {LONG}; echo; "
    # A 3-byte character: 16384 is not a multiple of 3, so a split cuts a character.
    "yes € | tr -d '\\n' | head -c 30000; echo; echo 'err end'"
)
WRITER_SH = f"( {_STDERR_SH} ) >&2 & {_STDOUT_SH}; wait"

EXPECTED = {
    "stdout": [
        *(f"out {i}" for i in range(200)),
        "abcdefghij" * (LONG // 10),
        *("a" * n for n in (16383, 16384, 16385, 32768)),
        "",
        # containerd drops the \r of a final CRLF (its logger reads lines the way Go's
        # bufio.ReadLine does); a \r inside the line is kept.
        "tab\there \rx  ",
        "out end",
    ],
    "stderr": [
        *(f"err {i}" for i in range(200)),
        "0123456789" * (LONG // 10),
        "€" * 10_000,
        "err end",
    ],
}


@pytest.fixture(scope="module")
def mixed_log(containerd: ContainerdHarness, log_root: Path) -> bytes:
    """The 0.log of a container that wrote `EXPECTED` on stdout and stderr, then exited."""
    pod = containerd.run_pod("default", "mixed", new_uid(), {"writer": WRITER_SH}, log_root)
    assert pod.wait_exited("writer", timeout=20) == 0
    path = pod.log_path("writer")
    # The exit status and the last write of containerd's copiers are not ordered for
    # us, so wait (with a deadline) for both streams' final lines.
    wait_until(
        lambda: b" stdout F out end\n" in (d := path.read_bytes()) and b" stderr F err end\n" in d,
        10,
        "both streams' last lines in 0.log",
    )
    data = path.read_bytes()
    pod.remove()
    return data


@pytest.mark.parametrize(
    "chunks",
    [pytest.param(partial(fixed, n), id=f"chunk{n}") for n in (4096, 7, 1 << 20)]
    + [pytest.param(partial(random_sizes, 20261126), id="random")],
)
def test_parser_reassembles_real_containerd_output_byte_for_byte(
    mixed_log: bytes, chunks: Callable[[], Iterator[int]]
) -> None:
    """Every line, split or not, comes back exactly as printed, on its own stream."""
    lines, safe_offset = parse(mixed_log, chunks())
    got = {stream: [ln.content for ln in lines if ln.stream == stream] for stream in EXPECTED}
    for stream, expected in EXPECTED.items():
        assert len(got[stream]) == len(expected), stream
        for i, (g, e) in enumerate(zip(got[stream], expected, strict=True)):
            assert g == e, f"{stream} line {i}: got {len(g)} chars {g[:40]!r}…, want {len(e)}"
    assert len(lines) == sum(len(v) for v in EXPECTED.values())
    assert all(not ln.flags for ln in lines), [ln.flags for ln in lines if ln.flags]
    assert all(0 <= ln.start_offset < ln.end_offset <= len(mixed_log) for ln in lines)
    assert safe_offset == len(mixed_log)


def test_containerd_really_split_the_long_lines(mixed_log: bytes) -> None:
    """The file has P records on both streams: the reassembly above was not vacuous."""
    records = raw_records(mixed_log)
    partials = [(s, n) for s, tag, n in records if tag == b"P"]
    assert {s for s, _ in partials} == {b"stdout", b"stderr"}
    # The recipe's observation: containerd 1.6 cuts at max_container_log_line_size
    # (16 KiB) and the 40,000-byte line becomes P 16384 / P 16384 / F 7232.
    assert {n for _, n in partials} == {16384}
    stdout = [(tag, n) for s, tag, n in records if s == b"stdout"]
    start = stdout.index((b"P", 16384))
    assert stdout[start : start + 3] == [(b"P", 16384), (b"P", 16384), (b"F", LONG - 32768)]


# --------------------------------------------------------------------------- rotation

# Writes numbered ticks until told to stop: StopContainer sends SIGTERM, which the shell
# (PID 1 of its PID namespace, so only a trapped signal reaches it) turns into "done".
TICKER_SH = (
    "trap 'stop=1' TERM; i=0; "
    'while [ -z "$stop" ]; do echo "tick $i"; i=$((i+1)); usleep 1000; done; '
    'echo "done $i"'
)


def _tick_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b" stdout F tick ")
    except FileNotFoundError:  # between the rename and the reopen
        return 0


def test_kubelet_style_rotation_loses_and_repeats_nothing(
    containerd: ContainerdHarness, log_root: Path
) -> None:
    """rename + ReopenContainerLog twice while writing: every tick once, in order."""
    pod: Pod = containerd.run_pod("default", "ticker", new_uid(), {"ticker": TICKER_SH}, log_root)
    live = pod.log_path("ticker")
    for _ in range(2):
        wait_until(lambda: _tick_count(live) >= 50, 10, "50 ticks in the live 0.log")
        pod.rotate("ticker")
    wait_until(lambda: _tick_count(live) >= 50, 10, "50 ticks in the reopened 0.log")
    assert pod.stop("ticker") == 0
    wait_until(lambda: b" stdout F done " in live.read_bytes(), 10, "the final 'done' line")

    files = pod.log_files("ticker")
    assert len(files) == 3
    contents: list[str] = []
    for path in files:
        lines, _ = parse(path.read_bytes(), fixed(4096))
        assert lines, f"{path.name} is empty: the rotation did not split the sequence"
        assert all(ln.stream == "stdout" and not ln.flags for ln in lines)
        contents += [ln.content for ln in lines]
    n = int(contents[-1].removeprefix("done "))
    assert contents == [f"tick {i}" for i in range(n)] + [f"done {n}"]
    pod.remove()

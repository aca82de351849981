"""A node full of bad log files, end to end: the logs and shipper processes read them beside
good ones and ship to the reference receiver. Each bad file is met with a clear log line or
a labelled record, no process ends, and every good line arrives exactly once.

The bad files: a 10 MiB line, binary garbage, invalid UTF-8, an empty file, timestamps far in
the past and future, a followed file replaced by a directory (and a directory where a file
is expected), symlink loops and an unreadable file. Run as root (CI), the logs process drops
the capabilities that bypass file modes, as the DaemonSet's container does, so chmod 000
binds it; where even that is impossible the unreadable-file part is skipped, saying why.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

from tests.reliability.input_pod import (
    InputPod,
    ReceiverProcess,
    StoredLogs,
    cri_line,
    file_modes_bind_this_user,
    pod_log_dir,
)

MiB = 1024 * 1024
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


def pod_file(log_root: Path, pod: str, number: int) -> Path:
    uid = f"00000000-0000-0000-0000-{number:012d}"
    return pod_log_dir(log_root, "bad", pod, uid, "app") / "0.log"


def good(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n}" for n in range(count)]


def cri(texts: list[str]) -> bytes:
    return "".join(cri_line(text) for text in texts).encode()


BIG = (b"BIG:" + b"0123456789abcdef" * (10 * MiB // 16))[: 10 * MiB]
rng = random.Random(1313)  # fixed: a failure is reproducible
GARBAGE = [
    raw
    for raw in (
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).replace(b"\n", b"")
        for _ in range(40)
    )
    if raw and not raw.endswith(b"\r")
]
TIMESTAMPS = {  # as written -> as shipped
    "1970-01-01T00:00:00Z": "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00.000000001Z": "0001-01-01T00:00:00.000000001Z",
    "9999-12-31T23:59:59.999999999Z": "9999-12-31T23:59:59.999999999Z",
    "2262-04-11T23:47:16.854775808Z": "2262-04-11T23:47:16.854775808Z",  # past int64 ns
    "2026-11-26T23:30:00-14:00": "2026-11-27T13:30:00Z",
}
BAD_TIMESTAMP = "0000-01-01T00:00:00Z"  # no year 0: the line is shipped whole at read time


class Node:
    """The log tree, with the good lines each file should deliver."""

    def __init__(self, log_root: Path) -> None:
        self.root = log_root
        self.expected: list[str] = []
        self.big = pod_file(log_root, "big", 1)
        self.garbage = pod_file(log_root, "garbage", 2)
        self.utf8 = pod_file(log_root, "utf8", 3)
        self.empty = pod_file(log_root, "empty", 4)
        self.times = pod_file(log_root, "times", 5)
        self.moving = pod_file(log_root, "moving", 6)
        self.born_dir = pod_file(log_root, "born-dir", 7)
        self.locked = pod_file(log_root, "locked", 8)

    def write(self, path: Path, data: bytes, expected: list[str], mode: str = "ab") -> None:
        with path.open(mode) as file:
            file.write(data)
        self.expected += expected

    def lay_out(self) -> None:
        before, after = good("big-before", 5), good("big-after", 5)
        self.write(
            self.big,
            cri(before) + cri_line("")[:-1].encode() + BIG + b"\n" + cri(after),
            [*before, *after],
        )
        lines, expected = [cri_line("garbage-first").encode()], ["garbage-first"]
        for index, raw in enumerate(GARBAGE):
            lines += [raw + b"\n", cri_line(f"garbage-good-{index}").encode()]
            expected.append(f"garbage-good-{index}")
        self.write(self.garbage, b"".join(lines), expected)
        utf8 = [
            cri_line(f"utf8-{n} ").encode()[:-1] + b"\xff\xfe\xc3(\xed\xa0\x80\n" for n in range(5)
        ]
        self.write(self.utf8, cri(["utf8-first"]) + b"".join(utf8), ["utf8-first"])
        self.empty.touch()
        stamped = [f"{written} stdout F time-{n}\n" for n, written in enumerate(TIMESTAMPS)]
        stamped.append(f"{BAD_TIMESTAMP} stdout F time-bad\n")
        # A line whose timestamp is unusable is shipped whole, as its message.
        shipped = [f"time-{n}" for n in range(len(TIMESTAMPS))] + [stamped[-1][:-1]]
        self.write(self.times, cri(["times-first"]) + "".join(stamped).encode(), shipped)
        self.write(self.moving, cri(good("moving-a", 5)), good("moving-a", 5))
        self.born_dir.mkdir()
        links = self.root / "containers"
        (links / "loop-a.log").symlink_to(links / "loop-b.log")
        (links / "loop-b.log").symlink_to(links / "loop-a.log")
        (links / "self.log").symlink_to(links / "self.log")
        self.write(self.locked, cri(good("locked", 5)), [])  # expected once readable
        self.locked.chmod(0)


def wait_for_messages(pod: InputPod, stored: StoredLogs, wanted: list[str], what: str) -> None:
    pod.wait_for(lambda: set(wanted) <= set(stored.messages()), timeout=60, what=what)


def test_bad_files_beside_good_ones_never_stop_collection(tmp_path: Path) -> None:
    log_root = tmp_path / "var-log"
    node = Node(log_root)
    node.lay_out()
    with ReceiverProcess() as receiver:
        check_collection(node, receiver)


def check_collection(node: Node, receiver: ReceiverProcess) -> None:
    log_root = node.root
    stored = StoredLogs(receiver)
    pod = InputPod(receiver, log_root, logs={"rescan_interval": "1s"})
    with pod:
        wait_for_messages(pod, stored, node.expected, "every good line of the first layout")

        # A followed file replaced by a directory; an empty file written; a directory that
        # stood where a file belongs becomes a file.
        node.moving.unlink()
        node.moving.mkdir()
        node.write(node.empty, cri(["empty-now-written"]), ["empty-now-written"])
        node.born_dir.rmdir()
        node.write(node.born_dir, cri(["born-dir-now-a-file"]), ["born-dir-now-a-file"])
        wait_for_messages(pod, stored, node.expected, "lines written after the first look")

        # The unreadable file: refused with a clear line, then read once readable.
        if file_modes_bind_this_user():

            def locked_errors() -> list[dict]:
                return [
                    e
                    for e in pod.events("logs", "tailer_file_error")
                    if e["path"].endswith(str(node.locked.relative_to(log_root)))
                ]

            pod.wait_for(locked_errors, timeout=30, what="a tailer_file_error for the locked file")
            assert {e["error_code"] for e in locked_errors()} == {"permission_denied"}, (
                locked_errors()
            )
            assert not any(m.startswith("locked-") for m in stored.messages())
        node.locked.chmod(0o640)
        node.expected += good("locked", 5)

        # The directory becomes a file again, under the same path: read from its start.
        shutil.rmtree(node.moving)
        node.write(node.moving, cri(good("moving-b", 5)), good("moving-b", 5))
        wait_for_messages(
            pod, stored, node.expected, "the unlocked file and the path made a file again"
        )
        assert pod.running() == {"shipper": True, "logs": True}, pod.log_tail("logs")

    messages = stored.messages()
    assert {text: messages[text] for text in node.expected} == {text: 1 for text in node.expected}
    assert receiver.stats()["duplicates"] == 0
    assert receiver.stats()["rejected"] == 0

    # The 10 MiB line: one physical line (max_line_size cuts only merged partials), shipped
    # as 10,000-character continuation records; every byte arrives, in order, once.
    big = [
        r
        for r in stored.records
        if r["labels"]["k8s_pod"] == "big" and not r["message"].startswith("big-")
    ]
    ordered = sorted(
        big,
        key=lambda r: (
            int(r["labels"].get("oversize_piece", "1")),
            int(r["labels"].get("continuation", "1/1").split("/")[0]),
        ),
    )
    assert "".join(r["message"] for r in ordered).encode() == BIG
    assert max(len(r["message"]) for r in ordered) == 10_000

    # Garbage: each line shipped whole, once, labelled as not parsed; its bytes as U+FFFD.
    unparsed = [r for r in stored.with_label("parse_error") if r["labels"]["k8s_pod"] == "garbage"]
    assert sorted(r["message"] for r in unparsed) == sorted(
        raw.decode("utf-8", "replace") for raw in GARBAGE
    )

    # Invalid UTF-8: replaced, tagged, nothing else changed.
    replaced = {
        r["message"]: r["tags"]
        for r in stored.refresh().records
        if r["message"].startswith("utf8-") and r["message"] != "utf8-first"
    }
    assert sorted(replaced) == sorted(
        f"utf8-{n} " + b"\xff\xfe\xc3(\xed\xa0\x80".decode("utf-8", "replace") for n in range(5)
    )
    assert all("invalid_utf8" in tags for tags in replaced.values())

    # Timestamps far away: kept (normalised to UTC); a date that cannot exist is tagged.
    stamps = {r["message"]: r for r in stored.records if "time-" in r["message"]}
    for n, shipped in enumerate(TIMESTAMPS.values()):
        assert stamps[f"time-{n}"]["timestamp"] == shipped
    unusable = stamps[f"{BAD_TIMESTAMP} stdout F time-bad"]
    assert {"bad_timestamp", "parse_error"} <= set(unusable["tags"])
    assert unusable["labels"]["parse_error"] == "cri_timestamp"
    assert RFC3339_UTC.fullmatch(unusable["timestamp"])

    # The symlink loops and the directories were looked at and passed over, with a reason.
    logs_text = pod.log_text("logs")
    assert "Traceback" not in logs_text and "Traceback" not in pod.log_text("shipper")
    looped = {
        Path(e["path"]).name
        for e in pod.events("logs", "tailer_file_error")
        if e["error_code"] == "eloop"
    }
    assert looped == {"loop-a.log", "loop-b.log", "self.log"}

"""File identity: device + inode + a fingerprint of the first line."""

from __future__ import annotations

import os
from pathlib import Path

from kk_logs.tailing import FileIdentity, Tailer, TailerConfig, fingerprint, identify
from kk_logs.tailing.identity import FINGERPRINT_MAX_BYTES, fingerprint_length, read_head
from tests.logs.tailing_support import Driver, cri_line


def test_fingerprint_covers_the_first_line_once_it_is_complete() -> None:
    assert fingerprint_length(b"") is None
    assert fingerprint_length(b"2026-11-26T04:09:57Z stdout F hel") is None
    assert fingerprint_length(b"abc\ndef") == 4
    assert fingerprint_length(b"x" * 300) == FINGERPRINT_MAX_BYTES
    assert fingerprint_length(b"x" * 300 + b"\n") == FINGERPRINT_MAX_BYTES
    # A deleted file's bytes are final: whatever is there identifies it.
    assert fingerprint_length(b"no newline", final=True) == 10
    assert fingerprint_length(b"", final=True) is None


def test_key_is_stable_as_the_file_grows(tmp_path: Path) -> None:
    """The key must not change while the file grows: it is in every record id."""
    path = tmp_path / "0.log"
    path.write_bytes(cri_line(1))
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        first = identify(st.st_dev, st.st_ino, read_head(fd))
        with path.open("ab") as f:
            for n in range(2, 50):
                f.write(cri_line(n))
        later = identify(st.st_dev, st.st_ino, read_head(fd))
    finally:
        os.close(fd)
    assert first is not None and later is not None
    assert first.key == later.key
    assert first.key == f"{st.st_dev:x}.{st.st_ino:x}.{fingerprint(cri_line(1))}"


def test_same_inode_with_other_first_line_is_another_file() -> None:
    a = identify(1, 42, cri_line(1))
    b = identify(1, 42, cri_line(2))
    assert a is not None and b is not None
    assert a.key != b.key
    assert a.key == identify(1, 42, cri_line(1) + cri_line(7)).key  # type: ignore[union-attr]


def test_reused_inode_is_read_from_zero_not_from_the_old_files_offset(tmp_path: Path) -> None:
    """The offset store knows (dev, ino, old fingerprint) at 5000; a new file that got the
    same inode (simulated: same dev/ino, other first line) must start at 0, while the real
    owner of that key would resume."""
    log_dir = tmp_path / "pods" / "ns_p_u" / "c"
    log_dir.mkdir(parents=True)
    path = log_dir / "0.log"
    content = b"".join(cri_line(n) for n in range(100))
    path.write_bytes(content)
    st = os.stat(path)
    old_file = FileIdentity(st.st_dev, st.st_ino, fingerprint(cri_line(999_999)), 60)
    this_file = identify(st.st_dev, st.st_ino, content)
    assert this_file is not None
    cfg = TailerConfig(globs=(str(tmp_path / "pods/*/*/*.log"),))

    stored = {old_file.key: 5000}
    driver = Driver(Tailer(cfg, start_offset=lambda i: stored.get(i.key)))
    driver.step()
    assert driver.data(this_file.key) == content

    # Control: had the store held this very file, it would have resumed there.
    stored = {this_file.key: len(content) - len(cri_line(99))}
    driver = Driver(Tailer(cfg, start_offset=lambda i: stored.get(i.key)))
    driver.step()
    assert driver.data(this_file.key) == cri_line(99)


def test_stored_offset_beyond_the_end_means_truncated_while_away(tmp_path: Path) -> None:
    log_dir = tmp_path / "pods" / "ns_p_u" / "c"
    log_dir.mkdir(parents=True)
    path = log_dir / "0.log"
    path.write_bytes(cri_line(1) + cri_line(2))
    st = os.stat(path)
    key = identify(st.st_dev, st.st_ino, path.read_bytes()).key  # type: ignore[union-attr]
    tailer = Tailer(
        TailerConfig(globs=(str(tmp_path / "pods/*/*/*.log"),)),
        start_offset=lambda i: 10_000 if i.key == key else None,
    )
    driver = Driver(tailer)
    driver.step()
    # Read again from 0, as the next generation: the lines at offsets 0.. of the old
    # content were sent under `key`, and the same ids would be dropped as duplicates.
    (read_as,) = driver.chunks
    assert read_as == f"{key}.1"
    assert driver.data(read_as) == cri_line(1) + cri_line(2)
    assert tailer.stats().truncations == 1


def test_file_without_a_complete_first_line_is_held_until_it_has_one(tmp_path: Path) -> None:
    log_dir = tmp_path / "pods" / "ns_p_u" / "c"
    log_dir.mkdir(parents=True)
    path = log_dir / "0.log"
    path.write_bytes(b"2026-11-26T04:09:57Z stdout F par")
    driver = Driver(Tailer(TailerConfig(globs=(str(tmp_path / "pods/*/*/*.log"),))))
    driver.step()
    assert driver.chunks == {}
    assert driver.tailer.stats().files_open == 1  # opened (held), just not identified
    with path.open("ab") as f:
        f.write(b"tial\n")
    driver.step()
    assert list(driver.all_data().values()) == [b"2026-11-26T04:09:57Z stdout F partial\n"]

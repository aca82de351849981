"""Which files are tailed: globs, symlinks, exclusions, age and compression."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

from kk_logs.tailing import Tailer, TailerConfig
from kk_logs.tailing.discovery import compile_globs, decide, scan_paths, watch_dirs
from tests.logs.tailing_support import Driver, cri_line, pod_tree

PODS = {
    "default_web_uid1": ["nginx", "sidecar"],
    "default_api_uid2": ["app"],
    "kube-system_dns_uid3": ["coredns"],
}


def _globs(root: Path) -> tuple[str, ...]:
    """The two default globs, moved under ``root``."""
    return (str(root / "pods/*/*/*.log"), str(root / "containers/*.log"))


def _fill(logs: dict[str, Path]) -> dict[str, bytes]:
    contents = {}
    for i, (name, path) in enumerate(sorted(logs.items())):
        data = b"".join(cri_line(i * 1000 + n, body=name) for n in range(20))
        path.write_bytes(data)
        contents[name] = data
    return contents


def test_both_default_globs_read_every_file_exactly_once(tmp_path: Path) -> None:
    logs = pod_tree(tmp_path, PODS)
    contents = _fill(logs)
    # A second symlink to one file, in a directory the glob also covers.
    os.symlink(logs["default_api_uid2/app"], tmp_path / "containers" / "extra-link.log")
    driver = Driver(Tailer(TailerConfig(globs=_globs(tmp_path))))
    driver.step()
    driver.step()
    read = sorted(driver.all_data().values())
    assert read == sorted(contents.values())
    assert driver.tailer.stats().files_open == len(logs)
    # Chunks name the real /pods path (what the metadata code parses), not a symlink.
    paths = {c.path for chunks in driver.chunks.values() for c in chunks}
    assert paths == {str(p) for p in logs.values()}


def test_dangling_container_symlink_is_ignored(tmp_path: Path) -> None:
    logs = pod_tree(tmp_path, {"default_web_uid1": ["nginx"]})
    os.symlink(tmp_path / "pods" / "gone", tmp_path / "containers" / "dangling.log")
    _fill(logs)
    driver = Driver(Tailer(TailerConfig(globs=_globs(tmp_path))))
    driver.step()
    assert len(driver.chunks) == 1
    assert driver.tailer.stats().errors == {}


def test_exclude_applies_to_each_path_and_to_the_resolved_file(tmp_path: Path) -> None:
    logs = pod_tree(tmp_path, PODS)
    contents = _fill(logs)
    # Excluding the symlink directory keeps what the pods glob reaches.
    driver = Driver(
        Tailer(TailerConfig(globs=_globs(tmp_path), exclude=(str(tmp_path / "containers/*"),)))
    )
    driver.step()
    assert sorted(driver.all_data().values()) == sorted(contents.values())
    # Excluding a namespace's pod directories also drops the symlinks that point there.
    tailer = Tailer(
        TailerConfig(globs=_globs(tmp_path), exclude=(str(tmp_path / "pods/kube-system_*/**"),))
    )
    driver = Driver(tailer)
    driver.step()
    expected = sorted(v for k, v in contents.items() if not k.startswith("kube-system"))
    assert sorted(driver.all_data().values()) == expected
    assert tailer.stats().skipped_excluded == 1


def test_ignore_older_skips_untouched_files_only_until_they_change(tmp_path: Path) -> None:
    logs = pod_tree(tmp_path, {"default_old_u1": ["c"], "default_new_u2": ["c"]})
    old, new = logs["default_old_u1/c"], logs["default_new_u2/c"]
    old.write_bytes(cri_line(1))
    new.write_bytes(cri_line(2))
    now = time.time()
    os.utime(old, (now - 7200, now - 7200))
    tailer = Tailer(TailerConfig(globs=_globs(tmp_path), ignore_older_s=3600))
    driver = Driver(tailer)
    driver.step(now)
    assert list(driver.all_data().values()) == [cri_line(2)]
    assert tailer.stats().skipped_too_old == 1
    with old.open("ab") as f:  # written again: no longer old
        f.write(cri_line(3))
    driver.step(time.time())
    assert sorted(driver.all_data().values()) == [cri_line(1) + cri_line(3), cri_line(2)]


def test_compressed_rotated_files_are_never_read(tmp_path: Path) -> None:
    directory = tmp_path / "pods" / "ns_p_u" / "c"
    directory.mkdir(parents=True)
    (directory / "0.log").write_bytes(cri_line(1))
    (directory / "0.log.20261126-000000.gz").write_bytes(gzip.compress(cri_line(0)))
    tailer = Tailer(TailerConfig(globs=(str(tmp_path / "pods/*/*/*"),)))  # matches the .gz
    driver = Driver(tailer)
    driver.step()
    assert list(driver.all_data().values()) == [cri_line(1)]
    assert tailer.stats().skipped_compressed == 1


def test_exclude_glob_syntax() -> None:
    match = compile_globs(["/var/log/pods/kube-system_*/**", "/x/*.log", "/y/**/z.log", "/w/[ab]?"])
    assert match("/var/log/pods/kube-system_dns_1/coredns/0.log")
    assert not match("/var/log/pods/default_web_1/nginx/0.log")
    assert match("/x/a.log")
    assert not match("/x/sub/a.log")  # * stays within one component
    assert match("/y/z.log") and match("/y/a/b/z.log")
    assert match("/w/ax") and not match("/w/cx")
    assert not compile_globs([])("/anything")


def test_decide_is_pure_and_dedupes_by_inode(tmp_path: Path) -> None:
    logs = pod_tree(tmp_path, {"default_web_uid1": ["nginx"]})
    result = scan_paths(_globs(tmp_path))
    assert len(result.found) == 2  # the file and its symlink
    decision = decide(result, now=time.time())
    assert len(decision.files) == 1
    (found,) = decision.files.values()
    assert found.real_path == str(logs["default_web_uid1/nginx"])
    assert len(decision.paths[found.key]) == 2


def test_watch_dirs_cover_every_level_and_missing_roots(tmp_path: Path) -> None:
    pod_tree(tmp_path, {"default_web_uid1": ["nginx"]})
    dirs = watch_dirs((*_globs(tmp_path), str(tmp_path / "missing/dir/*.log")))
    assert dirs == {
        str(tmp_path / "pods"),
        str(tmp_path / "pods/default_web_uid1"),
        str(tmp_path / "pods/default_web_uid1/nginx"),
        str(tmp_path / "containers"),
        str(tmp_path),  # nearest existing ancestor of the missing root
    }

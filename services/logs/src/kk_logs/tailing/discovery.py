"""Finding the log files to tail: globs in, one entry per physical file out.

`scan_paths` is the only IO here (``glob``, ``stat``, ``realpath``); `decide` is pure: it
takes that scan result plus the time and returns what to tail and what was skipped, and
why. Rules, in order:

* A path ending in a compressed suffix (``.gz``; `COMPRESSED_SUFFIXES`) is never read:
  kubelet gzips rotated files, and their bytes were already read from the original inode
  (reading them again is open-telemetry/opentelemetry-collector-contrib#40523).
* A path is dropped when it, or the file it resolves to, matches an exclude glob. The
  test is per path, so excluding ``/var/log/containers/*.log`` keeps the files that the
  pods glob reaches, while excluding ``/var/log/pods/kube-system_*/**`` also drops the
  ``/var/log/containers`` symlinks that point there.
* Every surviving path is resolved (symlinks followed) and files are deduplicated by
  ``(st_dev, st_ino)``: ``/var/log/containers/*.log`` are symlinks to the files under
  ``/var/log/pods``, and each physical file must be read exactly once.
* A file not yet tracked whose modification time is older than ``ignore_older_s`` is
  skipped; tracked files are never dropped by age.

Exclude globs use shell syntax on whole paths: ``*``, ``?`` and ``[...]`` stay within one
path component, ``**`` spans any number of components.

*Rotated siblings.* The globs reach live files only; a rotated file has been renamed out
of their reach: kubelet's ``0.log.<YYYYMMDD-hhmmss>`` and docker json-file's
``<id>-json.log.<n>`` (logrotate's ``app.log.<n>`` has the same shape). `rotated_rank`
says whether a name in a live file's directory is such a sibling and where it stands in
rotation order; `scan_rotated` lists the live files' directories for them (IO). Which of
them the tailer reads is its decision (`kk_logs.tailing.tailer`).
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "COMPRESSED_SUFFIXES",
    "DEFAULT_GLOBS",
    "Decision",
    "FileKey",
    "Found",
    "ResolvedPaths",
    "RotatedSibling",
    "ScanResult",
    "compile_globs",
    "decide",
    "rotated_rank",
    "scan_paths",
    "scan_rotated",
    "watch_dirs",
]

DEFAULT_GLOBS: tuple[str, ...] = ("/var/log/pods/*/*/*.log", "/var/log/containers/*.log")
"""Where kubelet puts container logs, and the per-container symlinks to them."""

COMPRESSED_SUFFIXES: tuple[str, ...] = (".gz",)
"""Rotated, compressed files: their content was read before compression."""

FileKey = tuple[int, int]
"""``(st_dev, st_ino)``: which physical file, while it exists."""


@dataclass(frozen=True, slots=True)
class Found:
    """One path a glob matched, resolved and stat-ed."""

    path: str
    """The path as the glob matched it (possibly a symlink)."""
    real_path: str
    """The path with symlinks resolved."""
    dev: int
    ino: int
    size: int
    mtime: float
    mtime_ns: int = 0

    @property
    def key(self) -> FileKey:
        """The physical file this path reaches."""
        return (self.dev, self.ino)


@dataclass(slots=True)
class ScanResult:
    """What one pass over the globs saw."""

    found: list[Found] = field(default_factory=list)
    errors: list[tuple[str, OSError]] = field(default_factory=list)
    """Paths that matched but could not be stat-ed (other than vanishing)."""


@dataclass(slots=True)
class Decision:
    """What to tail, and how many distinct files were skipped for each reason."""

    files: dict[FileKey, Found] = field(default_factory=dict)
    """One entry per physical file; the entry's ``real_path`` is its canonical path."""
    paths: dict[FileKey, list[str]] = field(default_factory=dict)
    """Every surviving path that reaches each file."""
    compressed: int = 0
    excluded: int = 0
    too_old: int = 0


@dataclass(frozen=True, slots=True)
class RotatedSibling:
    """A rotated file beside a live one: ``path`` was once ``live_path``."""

    path: str
    live_path: str
    dev: int
    ino: int
    size: int
    mtime: float
    mtime_ns: int
    rank: tuple[int, str]
    """Sort key: older rotations first (see `rotated_rank`)."""

    @property
    def key(self) -> FileKey:
        return (self.dev, self.ino)


# kubelet: "20060102-150405" (pkg/kubelet/logs/container_log_manager.go); docker json-file
# and logrotate: a number, 1 being the newest.
_ROTATED_SUFFIX = re.compile(r"\.(?:(?P<stamp>\d{8}-\d{6})|(?P<number>\d{1,6}))")


def rotated_rank(live_name: str, name: str) -> tuple[int, str] | None:
    """If ``name`` is a rotated (uncompressed) sibling of ``live_name``, its place in
    rotation order as a sort key, oldest first; otherwise ``None``.

    kubelet's timestamps sort as written; docker's and logrotate's numbers count back
    from the newest (``.1``), so a higher number is older.
    """
    if not name.startswith(live_name) or len(name) == len(live_name):
        return None
    match = _ROTATED_SUFFIX.fullmatch(name, len(live_name))
    if match is None:
        return None
    if match["stamp"] is not None:
        return (1, match["stamp"])
    return (0, f"{999_999 - int(match['number']):06d}")


def scan_rotated(live_paths: Iterable[str]) -> list[RotatedSibling]:
    """The rotated siblings of ``live_paths`` (real paths of live files), oldest first.

    One directory listing per directory; entries that vanish meanwhile are skipped, and
    so are directories that cannot be listed (the live files' own errors are reported by
    the tailer).
    """
    by_dir: dict[str, set[str]] = {}
    for path in live_paths:
        directory, name = os.path.split(path)
        by_dir.setdefault(directory, set()).add(name)
    siblings: list[RotatedSibling] = []
    for directory, live_names in by_dir.items():
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            for live_name in live_names:
                rank = rotated_rank(live_name, entry.name)
                if rank is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    break
                if stat.S_ISREG(st.st_mode):
                    siblings.append(
                        RotatedSibling(
                            entry.path,
                            os.path.join(directory, live_name),
                            st.st_dev,
                            st.st_ino,
                            st.st_size,
                            st.st_mtime,
                            st.st_mtime_ns,
                            rank,
                        )
                    )
                break
    siblings.sort(key=lambda s: (s.live_path, s.rank))
    return siblings


_SEGMENT = re.compile(r"\*\*/|\*\*|\*|\?|\[[^/\]]*\]|[^*?\[]+|\[")


def _glob_regex(pattern: str) -> str:
    out: list[str] = []
    for part in _SEGMENT.findall(pattern):
        if part == "**/":
            out.append("(?:.*/)?")  # zero or more whole directories
        elif part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        elif part.startswith("[") and len(part) > 1:
            body = part[1:-1]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]" if body else re.escape(part))
        else:
            out.append(re.escape(part))
    return "".join(out)


def compile_globs(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A predicate that tells whether a path matches any of ``patterns``."""
    parts = [_glob_regex(p) for p in patterns]
    if not parts:
        return lambda _path: False
    matcher = re.compile("|".join(f"(?:{p})" for p in parts), re.DOTALL)
    return lambda path: matcher.fullmatch(path) is not None


ResolvedPaths = dict[str, tuple[FileKey, str]]
"""Path -> (the file it reached, its real path) at the previous scan: `scan_paths`'s cache."""


def scan_paths(
    patterns: Sequence[str],
    *,
    stat_fn: Callable[[str], os.stat_result] = os.stat,
    realpath: Callable[[str], str] = os.path.realpath,
    resolved: ResolvedPaths | None = None,
) -> ScanResult:
    """Expand ``patterns`` and stat every regular file they reach (following symlinks).

    A path that vanishes between the glob and the stat (a pod being deleted, a dangling
    ``/var/log/containers`` symlink) is simply absent; other stat errors are returned.

    ``resolved`` (kept by the caller from one scan to the next, and updated here) spares
    resolving a path again while it reaches the same file: `os.path.realpath` costs an
    ``lstat`` per path component, most of a scan's time on a node of thousands of files.
    A path reaching the same device and inode as before reaches it through the same links
    (a re-pointed symlink reaches another inode).
    """
    result = ScanResult()
    seen: set[str] = set()
    cache: ResolvedPaths = {} if resolved is None else resolved
    for pattern in patterns:
        for path in glob.iglob(pattern, recursive=True):
            if path in seen:
                continue
            seen.add(path)
            try:
                st = stat_fn(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                result.errors.append((path, exc))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = (st.st_dev, st.st_ino)
            known = cache.get(path)
            if known is not None and known[0] == key:
                real = known[1]
            else:
                real = realpath(path)
                cache[path] = (key, real)
            result.found.append(
                Found(path, real, st.st_dev, st.st_ino, st.st_size, st.st_mtime, st.st_mtime_ns)
            )
    if resolved is not None:
        for gone in resolved.keys() - seen:
            del resolved[gone]
    return result


def decide(
    result: ScanResult,
    *,
    now: float,
    exclude: Callable[[str], bool] = lambda _path: False,
    ignore_older_s: float | None = None,
    known: Collection[FileKey] = (),
) -> Decision:
    """Apply the skip rules (module docstring) to a scan; ``now`` is wall-clock seconds."""
    decision = Decision()
    compressed: set[FileKey] = set()
    excluded: set[FileKey] = set()
    too_old: set[FileKey] = set()
    for found in result.found:
        key = found.key
        if found.path.endswith(COMPRESSED_SUFFIXES) or found.real_path.endswith(
            COMPRESSED_SUFFIXES
        ):
            compressed.add(key)
            continue
        if exclude(found.path) or exclude(found.real_path):
            excluded.add(key)
            continue
        if ignore_older_s is not None and key not in known and now - found.mtime > ignore_older_s:
            too_old.add(key)
            continue
        decision.paths.setdefault(key, []).append(found.path)
        current = decision.files.get(key)
        # Prefer the entry found through its real path, so the canonical path is the
        # /var/log/pods one that the metadata code parses, not a symlink.
        if current is None or (current.path != current.real_path and found.path == found.real_path):
            decision.files[key] = found
    decision.compressed = len(compressed - decision.files.keys())
    decision.excluded = len(excluded - decision.files.keys())
    decision.too_old = len(too_old - decision.files.keys())
    return decision


def _static_prefix(pattern: str) -> tuple[str, list[str]]:
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return os.sep.join(parts[:i]) or os.sep, parts[i:]
    return os.path.dirname(pattern) or os.sep, []


def watch_dirs(patterns: Sequence[str]) -> set[str]:
    """The directories whose entries decide what ``patterns`` match.

    For ``/var/log/pods/*/*/*.log`` that is ``/var/log/pods``, every pod directory and
    every container directory. A missing static prefix is replaced by its nearest
    existing ancestor, so the creation of the directory itself is noticed. ``**`` means
    every directory below that point.
    """
    dirs: set[str] = set()
    for pattern in patterns:
        root, rest = _static_prefix(pattern)
        base = root
        while not os.path.isdir(base) and os.path.dirname(base) != base:
            base = os.path.dirname(base)
        if not os.path.isdir(base):
            continue
        dirs.add(base)
        if base != root:
            continue
        # Every directory level between the static prefix and the file name part.
        for depth in range(1, len(rest)):
            sub = rest[:depth]
            if "**" in sub:
                for top in glob.iglob(os.path.join(root, *sub[: sub.index("**")])):
                    for walked, _dirnames, _files in os.walk(top):
                        dirs.add(walked)
                break
            for match in glob.iglob(os.path.join(root, *sub)):
                if os.path.isdir(match):
                    dirs.add(match)
    return dirs

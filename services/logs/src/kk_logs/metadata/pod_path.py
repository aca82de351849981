"""Pod metadata that the kubelet encodes in log file paths.

Two layouts exist on every node (kubelet ``BuildContainerLogsPath`` and the
``/var/log/containers`` symlinks it maintains):

* ``/var/log/pods/<namespace>_<pod-name>_<pod-uid>/<container>/<restart>.log``
  (rotated copies: ``<restart>.log.<YYYYMMDD-hhmmss>`` and the same plus ``.gz``);
* ``/var/log/containers/<pod-name>_<namespace>_<container>-<container-id>.log``.

Namespaces and pod names are DNS names and uids are UUIDs, so none of them can
contain ``_``; that is what makes splitting on ``_`` unambiguous. Container names
are DNS labels that may contain ``-``, so the container id (64 hex digits) is
anchored at the end of the symlink name instead.

Only the trailing path components are matched, not the ``/var/log`` prefix, because
the agent may mount the host's log directories elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["PathMeta", "parse_log_path"]

_POD_DIR = re.compile(r"^(?P<ns>[^_/]+)_(?P<pod>[^_/]+)_(?P<uid>[^_/]+)$")
_RESTART_FILE = re.compile(r"^(?P<restart>\d+)\.log(?:\.\d{8}-\d{6}(?:\.gz)?)?$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SYMLINK = re.compile(
    r"^(?P<pod>[^_/]+)_(?P<ns>[^_/]+)_(?P<container>[^/]+)-(?P<id>[0-9a-f]{64})\.log$"
)


@dataclass(frozen=True)
class PathMeta:
    """What a log file's path says about the container that writes it."""

    namespace: str
    pod_name: str
    container: str
    pod_uid: str = ""
    """Empty for the ``/var/log/containers`` form, which does not carry it."""
    restart_count: int | None = None
    """The container's restart count for ``/var/log/pods`` paths (``<restart>.log``)."""
    container_id: str = ""
    """The runtime's container id for ``/var/log/containers`` paths."""


def parse_log_path(path: str | PurePosixPath) -> PathMeta | None:
    """Parse either kubelet log path layout; ``None`` when the path matches neither."""
    p = PurePosixPath(path)
    if len(p.parts) >= 3:
        restart = _RESTART_FILE.match(p.name)
        pod_dir = _POD_DIR.match(p.parent.parent.name)
        container = p.parent.name
        if restart and pod_dir and _CONTAINER_NAME.match(container):
            return PathMeta(
                namespace=pod_dir["ns"],
                pod_name=pod_dir["pod"],
                pod_uid=pod_dir["uid"],
                container=container,
                restart_count=int(restart["restart"]),
            )
    link = _SYMLINK.match(p.name)
    if link:
        return PathMeta(
            namespace=link["ns"],
            pod_name=link["pod"],
            container=link["container"],
            container_id=link["id"],
        )
    return None

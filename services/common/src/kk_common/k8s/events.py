"""Watch-cache inputs: what the list+watch adapters feed into the sans-IO caches.

They mirror the Kubernetes watch protocol: ``ADDED``/``MODIFIED``/``DELETED`` carry an
object, ``BOOKMARK`` carries only a ``resourceVersion`` (the server telling us "you are
up to date to here", so a resumed watch need not replay filtered-out history), and a
list ("relist") replaces the whole state at the list's ``resourceVersion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Added", "Bookmarked", "Deleted", "Modified", "Relisted", "WatchEvent"]

T = TypeVar("T")


@dataclass(frozen=True)
class Added(Generic[T]):
    """A watch ``ADDED`` event: the object appeared (or started matching the selector)."""

    obj: T


@dataclass(frozen=True)
class Modified(Generic[T]):
    """A watch ``MODIFIED`` event: the object's new state."""

    obj: T


@dataclass(frozen=True)
class Deleted(Generic[T]):
    """A watch ``DELETED`` event: the object's last state before it went away."""

    obj: T


@dataclass(frozen=True)
class Bookmarked:
    """A watch ``BOOKMARK``: only the resourceVersion to resume from moved."""

    resource_version: str


@dataclass(frozen=True)
class Relisted(Generic[T]):
    """A full list: ``objs`` is the complete state at ``resource_version``.

    ``resource_version`` is ``""`` when the source has none (the kubelet's ``/pods``).
    """

    objs: tuple[T, ...]
    resource_version: str = ""


WatchEvent = Added[T] | Modified[T] | Deleted[T] | Bookmarked | Relisted[T]

"""Giving memory back after a burst: the agent's idle footprint is paid on every node.

CPython returns a pymalloc arena to the system only when every object in it is gone, and
glibc's malloc keeps freed heap pages mapped. After a catch-up burst (thousands of records
held at once) a service therefore stays near its peak RSS while idle. `release_free_memory`
asks glibc to return the free pages (``malloc_trim(0)``); it frees nothing that is in use,
takes a few milliseconds, and is a no-op where glibc is not the allocator (musl, macOS).
Services call it from their periodic telemetry tick.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return free heap pages to the system; True when something was released."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False

"""The one error a scrape ends with: a stable reason code and a message for operators."""

from __future__ import annotations

__all__ = ["ScrapeError"]


class ScrapeError(Exception):
    """A scrape failed. ``reason`` is short and stable (metrics label); ``absent`` says the
    source is not there at all (refused, 404), which an ``optional`` source keeps quiet."""

    def __init__(self, reason: str, message: str, *, absent: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.absent = absent

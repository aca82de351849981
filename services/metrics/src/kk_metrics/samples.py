"""A sample as a source gives it, before the agent's labels, id and encoding (sans-IO)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

__all__ = ["RawSample", "SampleKind"]

SampleKind = Literal["counter", "gauge"]


class RawSample(NamedTuple):
    """One value of one series, as read from a source.

    A named tuple, not a dataclass: a busy node's cAdvisor page has 100,000 of them per
    scrape, and the tuple is the cheapest object to build and unpack.
    """

    name: str
    kind: SampleKind
    value: float
    labels: Mapping[str, str]
    timestamp_s: float | None = None
    """When the source measured it (seconds since the epoch); None: the scrape's time."""
    help: str = ""

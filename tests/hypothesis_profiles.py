"""Hypothesis settings for the property tests, sized by ``KK_TEST_PROFILE``.

``ci`` (the default) keeps each property to a few seconds; ``full`` runs many more
examples. Each module registers its own named profile and applies it per test, so loading
one module never changes another's settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["profile"]


def profile(name: str, *, ci: int, full: int) -> settings:
    """The settings for ``name``: ``ci`` or ``full`` examples per property, no deadline."""
    checks = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
    for size, examples in (("ci", ci), ("full", full)):
        settings.register_profile(
            f"{name}-{size}", max_examples=examples, deadline=None, suppress_health_check=checks
        )
    size = "full" if os.environ.get("KK_TEST_PROFILE") == "full" else "ci"
    return settings.get_profile(f"{name}-{size}")

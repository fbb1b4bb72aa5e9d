"""Shared test configuration: hypothesis profiles and the repository root."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=2_000)
# `make mutation`: every mutant meets the same few examples (derandomized), so a verdict is repeatable
settings.register_profile(
    "mutation", parent=settings.get_profile("default"), max_examples=20, derandomize=True, database=None
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """A property's example count: ``n``, more under the thorough profile, a few under mutation testing."""
    most = settings().max_examples
    return min(n, most) if PROFILE == "mutation" else max(n, most)

"""Device time for the emulator: a virtual clock moved by calls, or real time at a chosen speed.

The library never reads a clock; the emulator owns one and passes its time in. Device time is whole
seconds since the device epoch (specs/protocol.md §1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Clock", "RealClock", "VirtualClock"]


class Clock(Protocol):
    def now(self) -> int:
        """Device time now, in whole seconds."""
        ...


@dataclass
class VirtualClock:
    """Time that moves only when told to (tests, simulation)."""

    time: int = 0

    def now(self) -> int:
        return self.time

    def advance_to(self, t: int) -> None:
        if t < self.time:
            raise ValueError(f"time runs forward: {t} < {self.time}")
        self.time = t


@dataclass
class RealClock:
    """Wall-clock time from ``start``, ``speed`` device seconds per real second."""

    start: int
    speed: float = 1.0
    _origin: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, not {self.speed}")

    def now(self) -> int:
        return self.start + int((time.monotonic() - self._origin) * self.speed)

    def seconds_until(self, t: int) -> float:
        """Real seconds until device time ``t`` (0 if it has passed)."""
        return max(0.0, (t - self.now()) / self.speed)

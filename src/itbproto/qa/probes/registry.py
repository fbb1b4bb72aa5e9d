"""The probes' registry: what each needs of its target, and the hands a target lends it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from itbproto.core.security import PairedKey
from itbproto.core.wire.enums import Role
from itbproto.io.transport import Transport
from itbproto.qa.bench import Bench
from itbproto.qa.wire import Probe

__all__ = ["FIRST_LOCK_S", "FREE_PINS", "NEEDS", "PROBES", "Hands", "ProbeSpec", "probe"]

#: what each need means, for the report
NEEDS = {
    "fresh": "a new pump in a known state for each probe (in-process targets)",
    "clock": "device time moved by the suite (in-process targets)",
    "faults": "hardware faults injected (battery, motor: in-process targets)",
    "pairing": "the PIN the pump shows (--itb-pin, or in-process)",
    "links": "a second link beside the first (not one bumble hub host)",
    "screening": "a new patient in screening (in-process targets)",
    "restart": "the pump restarted from its store (in-process)",
    "valve": "a valve-gated pump (in-process: the shipped valve profile; remote: --itb-device of one)",
}


class Hands(Protocol):
    """What the target offers a probe beyond the clinician's link."""

    async def link(self, role: Role) -> Probe:
        """A new link with a session open in ``role`` (paired and sealed when the target pairs)."""
        ...

    async def fault(self, kind: str, value: int = 0) -> None:
        """A hardware event (itbemu's fault kinds)."""
        ...

    async def pair(self, pin: str, role: Role) -> bool:
        """Try to pair with ``pin``: True if the pump took it."""
        ...

    async def key_of(self, role: Role) -> PairedKey | None:
        """The key paired in ``role`` (None when the target does not pair)."""
        ...

    async def restart(self) -> None:
        """The pump switched off and on (its links gone); the clinician's link opens again."""
        ...

    async def hand_over(self) -> None:
        """End the clinician's session (a new one opens on its link, holding no programming lock)."""
        ...

    async def transport(self) -> Transport:
        """A new link, no session."""
        ...

    pin: str | None
    requires_pairing: bool


Run = Callable[[Bench, Hands], Awaitable[None]]


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    rules: tuple[str, ...]
    needs: frozenset[str]
    run: Run

    @property
    def valve(self) -> bool:
        """It runs on a valve-gated pump."""
        return "valve" in self.needs


PROBES: list[ProbeSpec] = []
#: pairing's guard against guessing (specs/protocol.md §6): free wrong PINs, then the first lock
FREE_PINS, FIRST_LOCK_S = 3, 30


def probe(*rules: str, needs: tuple[str, ...] = ("fresh", "clock")) -> Callable[[Run], Run]:
    def register(run: Run) -> Run:
        PROBES.append(ProbeSpec(run.__name__, rules, frozenset(needs), run))
        return run

    return register

"""Faults to inject: device faults (hardware events at a device time) and link faults (what a radio or a
network does to bytes), seeded so a run can be repeated; from tests, from a plan file, from the CLI.

A plan file (TOML)::

    seed = 7
    [[fault]]               # device faults, at device seconds from the start
    at = 86400
    kind = "motor-stall"    # motor-stall, motor-recover, occlusion, occlusion-cleared, magnetic-field,
                            # battery-drop (percent = 30), reservoir-discrepancy (offset_ul = -1500)
    [link]                  # each chunk, in either direction, with these probabilities
    drop = 0.01
    duplicate = 0.01
    corrupt = 0.01
    disconnect = 0.001      # the link goes down in the middle of a frame
    delay_ms = 20           # the most a chunk waits
"""

from __future__ import annotations

import random
import tomllib
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from itbproto.core.wire.enums import PumpKind
from itbproto.core.wire.messages import AlarmNotify

if TYPE_CHECKING:
    from itbemu.device import Emulator

__all__ = ["KINDS", "DeviceFault", "FaultPlan", "LinkFaults", "apply_fault"]

Kind = Literal[
    "motor-stall",
    "motor-recover",
    "occlusion",
    "occlusion-cleared",
    "magnetic-field",
    "battery-drop",
    "reservoir-discrepancy",
]
KINDS: tuple[Kind, ...] = typing.get_args(Kind)


@dataclass(frozen=True, slots=True)
class DeviceFault:
    """A hardware event. ``value``: the percent of charge lost (battery-drop), the µL the reservoir
    really holds beyond the pump's count (reservoir-discrepancy)."""

    kind: Kind
    value: int = 0


def apply_fault(emulator: Emulator, fault: DeviceFault, now: int) -> tuple[AlarmNotify, ...]:
    """Make the fault happen at ``now``; the alarms the pump raises for it."""
    pump = emulator.pump
    match fault.kind:
        case "motor-stall" | "occlusion":  # nothing can be pushed: the motor stalls on the pressure
            return pump.set_motor_stalled(True, now)
        case "motor-recover" | "occlusion-cleared":
            return pump.set_motor_stalled(False, now)
        case "magnetic-field":
            if pump.therapy.profile.pump_kind is PumpKind.VALVE:
                return pump.discharge(now)  # the valves open: the reservoir empties into the patient
            return pump.set_motor_stalled(True, now)  # a motor pump's rotor stops in the field
        case "battery-drop":
            return pump.drain_battery(fault.value, now)
        case "reservoir-discrepancy":
            emulator.hardware.reservoir_offset_ul += fault.value
            return pump.tick(now)
    raise ValueError(f"unknown fault {fault.kind!r}")  # pragma: no cover  (the Literal is exhaustive)


@dataclass
class LinkFaults:
    """What a link does to the chunks it carries, drawn from one seeded generator."""

    drop: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    disconnect: float = 0.0
    delay_ms: int = 0
    seed: int = 0
    #: the next so many chunks are lost for certain (a test's fault, beside the random ones)
    lose_next: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "corrupt", "disconnect"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability, not {getattr(self, name)}")
        self.rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return any((self.drop, self.duplicate, self.corrupt, self.disconnect, self.delay_ms))

    def kept(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` but the next ``lose_next`` of them, which are lost (and counted off)."""
        for chunk in chunks:
            if self.lose_next:
                self.lose_next -= 1
            else:
                yield chunk

    def carry(self, chunk: bytes) -> tuple[list[bytes], bool]:
        """What arrives of ``chunk`` (nothing, it, a corrupted copy, or it twice), and whether the link
        goes down after it (then only its first half arrives)."""
        if self.rng.random() < self.disconnect:
            return [chunk[: len(chunk) // 2]], True
        if self.rng.random() < self.drop:
            return [], False
        if chunk and self.rng.random() < self.corrupt:
            at = self.rng.randrange(len(chunk))
            chunk = chunk[:at] + bytes([chunk[at] ^ (1 << self.rng.randrange(8))]) + chunk[at + 1 :]
        return ([chunk, chunk] if self.rng.random() < self.duplicate else [chunk]), False

    def delay(self) -> float:
        """Seconds the next chunk waits."""
        return self.rng.uniform(0, self.delay_ms / 1000) if self.delay_ms else 0.0


@dataclass(frozen=True)
class FaultPlan:
    """Device faults at device times (seconds from the start of a run) and the link's faults."""

    faults: tuple[tuple[int, DeviceFault], ...] = ()
    link: LinkFaults = field(default_factory=LinkFaults)

    @classmethod
    def load(cls, path: str | Path) -> FaultPlan:
        with open(path, "rb") as f:
            return cls.parse(tomllib.load(f), str(path))

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "fault plan") -> FaultPlan:
        seed = data.get("seed", 0)
        faults = []
        for entry in data.get("fault", []):
            kind, at = entry.get("kind"), entry.get("at")
            if kind not in KINDS or type(at) is not int or at < 0:
                raise ValueError(f"{source}: a fault needs a kind of {list(KINDS)} and a time in s: {entry}")
            value = entry.get("percent", entry.get("offset_ul", 0))
            faults.append((at, DeviceFault(kind, int(value))))
        link = data.get("link", {})
        unknown = set(link) - {"drop", "duplicate", "corrupt", "disconnect", "delay_ms"}
        if unknown:
            raise ValueError(f"{source}: unknown link faults {sorted(unknown)}")
        return cls(tuple(sorted(faults, key=lambda f: f[0])), LinkFaults(**link, seed=seed))

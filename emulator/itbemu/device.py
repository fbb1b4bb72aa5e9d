"""The emulated pump: the library's pump and firmware, with hardware, time, a store and a delivery ledger.

:class:`Emulator` is still sans-IO (the servers move its bytes; a clock gives it its time): it takes the
bytes of each link and a device time, and returns the bytes to write to each link. Between calls it lets
time pass event by event (a bolus ends, a suspension runs out, the reservoir runs low, the battery reaches
its indicators), so every alarm is raised at its own time however seldom it is called. Every change is
saved to the store before the bytes that acknowledge it are returned: whatever a link with a session
changed, and every log entry but a stranger's. A read changes nothing and writes nothing: time passing is
not saved, as a restart from the store lets the same time pass again, event by event.
What only strangers caused (links without a session: their refusals,
dropped frames and totals, and the time that passed meanwhile) waits for the next save, which the servers
make at least every second while it waits (:attr:`Emulator.unsaved`): a flood costs no disk write per frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from itbemu.faults import DeviceFault, apply_fault
from itbemu.store import Store
from itbproto.core.connection import Connection
from itbproto.core.firmware import Firmware, Output
from itbproto.core.machines.pump import (
    EVENT_LOG_LIMIT,
    STRANGER_LOG_LIMIT,
    DeviceState,
    EventLog,
    PumpMachine,
)
from itbproto.core.safety import SafetyPolicy
from itbproto.core.therapy import SCALE, DeviceProfile, Drug, Flow, TherapyState
from itbproto.core.therapy.forecast import next_event_at
from itbproto.core.wire import Origin, PatientGroup, PatientRecord, Phase

__all__ = ["START", "Emulator", "Hardware", "new_therapy"]

#: a new emulated pump's device time: day 1000 of the device epoch
START = 1_000 * SCALE
#: the parts of the pump's state
_KEPT = tuple(f.name for f in dataclasses.fields(DeviceState))


def new_therapy(
    profile: DeviceProfile,
    drug: Drug,
    *,
    concentration_ug_ml: int,
    screening_dose_ng: int,
    screening_effect_s: int = 6 * 3_600,
    reservoir_ul: int | None = None,
) -> TherapyState:
    """A pump as an emulator sets one up: at :data:`START`, full (or ``reservoir_ul``), for an adult of
    spinal origin in therapy whose screening dose ``screening_dose_ng`` worked ``screening_effect_s``."""
    record = PatientRecord(
        group=PatientGroup.ADULT,
        origin=Origin.SPINAL,
        risks=frozenset(),
        phase=Phase.THERAPY,
        screening_dose_ng=screening_dose_ng,
        screening_effect_s=screening_effect_s,
    )
    return TherapyState.new(
        now=START,
        profile=profile,
        drug=drug,
        concentration_ug_ml=concentration_ug_ml,
        reservoir_ul=profile.reservoir_capacity_ul if reservoir_ul is None else reservoir_ul,
        record=record,
    )


@dataclass
class Hardware:
    """What the emulator knows that the pump does not: the truth about its reservoir."""

    #: µL really in the reservoir beyond what the pump counts (a reading discrepancy fault)
    reservoir_offset_ul: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"reservoir_offset_ul": self.reservoir_offset_ul}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hardware:
        return cls(reservoir_offset_ul=int(data.get("reservoir_offset_ul", 0)))


@dataclass
class Emulator:
    """One emulated pump (see the module docstring)."""

    pump: PumpMachine
    store: Store | None = None
    hardware: Hardware = field(default_factory=Hardware)
    #: every delivery segment at the catheter tip since the pump was made (the store keeps them too)
    ledger: list[Flow] = field(default_factory=list)
    #: log entries already in the store
    saved_log: int = 0
    #: device faults still to happen, (device time, fault), soonest first
    faults: list[tuple[int, DeviceFault]] = field(default_factory=list)
    firmware: Firmware = field(init=False)
    #: the next event's time (None: none ahead), and the state it was worked out for
    _next: tuple[TherapyState, int | None] | None = field(init=False, default=None)
    _unsaved: bool = field(init=False, default=False)
    #: the state last saved, and the ledger rows not saved yet
    _saved: DeviceState | None = field(init=False, default=None)
    _flows: list[Flow] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.firmware = Firmware(self.pump)
        self._save()

    @classmethod
    def create(
        cls, therapy: TherapyState, policy: SafetyPolicy, *, serial: str, store: Store | None = None
    ) -> Emulator:
        """A new pump (its store, if given, must be new)."""
        if store is not None and store.load(0) is not None:
            raise ValueError(f"{store.path} already holds a pump: open it instead")
        return cls(PumpMachine.new(therapy, policy, serial=serial), store)

    @classmethod
    def open(cls, store: Store, policy: SafetyPolicy) -> Emulator:
        """The pump a store holds, as it was at its last acknowledged change."""
        saved = store.load(EVENT_LOG_LIMIT, STRANGER_LOG_LIMIT)
        if saved is None:
            raise ValueError(f"{store.path} holds no pump")
        pump = PumpMachine(saved.state, policy, log=EventLog(saved.log, strangers=saved.strangers))
        return cls(pump, store, Hardware.from_json(saved.hardware), saved_log=pump.log.total)

    @property
    def therapy(self) -> TherapyState:
        return self.pump.therapy

    @property
    def now(self) -> int:
        return self.pump.therapy.now

    # --- links ---------------------------------------------------------------------------------------

    def attach(self, connection: Connection) -> int:
        return self.firmware.attach(connection)

    def detach(self, link: int) -> None:
        """The link is gone: its totals are logged (and saved, unless only a stranger's)."""
        self.firmware.detach(link)
        self._save_unless_strangers_only(link=None)

    def close(self) -> None:
        """The pump stops (a clean stop): every link's totals are logged and saved."""
        self.firmware.close()
        self._save()

    def receive(self, link: int, data: bytes, now: int) -> Output:
        """Bytes from ``link`` at device time ``now``: what to write to every link (saved first)."""
        out = self._elapse(now)
        self._merge(out, self.firmware.receive(link, data, max(now, self.now)))
        self._save_unless_strangers_only(link)
        return out

    # --- time and hardware ---------------------------------------------------------------------------

    def advance_to(self, now: int) -> Output:
        """Let device time reach ``now``, event by event; what every link must be told."""
        out = self._elapse(now)
        self._save()
        return out

    def next_event_at(self) -> int | None:
        """When something happens next if nothing is done (the servers sleep until then)."""
        therapy = self.therapy
        if self._next is None or self._next[0] is not therapy:  # (a change makes a new state)
            self._next = (therapy, next_event_at(therapy))
        times = (self._next[1], self.faults[0][0] if self.faults else None)
        return min((t for t in times if t is not None), default=None)

    def schedule(self, faults: Sequence[tuple[int, DeviceFault]]) -> None:
        """Device faults to happen at their device times (each as time reaches it)."""
        self.faults = sorted([*self.faults, *faults], key=lambda f: f[0])

    def inject(self, fault: DeviceFault, now: int) -> Output:
        """A device fault at ``now`` (see :mod:`itbemu.faults`)."""
        self.schedule([(now, fault)])
        return self.advance_to(now)

    def _elapse(self, now: int) -> Output:
        """Time to ``now``: each event at its own time, each fault when its time comes."""
        out: Output = {}
        if now <= self.now and not (self.faults and self.faults[0][0] <= now):
            return out  # no time passes and no fault is due: nothing can be (events come after now)
        while (t := self.next_event_at()) is not None and t <= now:
            if self.faults and self.faults[0][0] <= t:
                _, fault = self.faults.pop(0)
                self._merge(out, self.firmware.notify(apply_fault(self, fault, max(t, self.now))))
            else:
                self._merge(out, self.firmware.tick(t))
        if now > self.now:
            logged, ahead = self.pump.log.total, self._next
            self._merge(out, self.firmware.tick(now))
            if ahead is not None and self.pump.log.total == logged:  # only time passed, short of the next
                self._next = (self.therapy, ahead[1])  # event: it is where it was
        return out

    @staticmethod
    def _merge(out: Output, more: Output) -> None:
        for link, chunks in more.items():
            out.setdefault(link, []).extend(chunks)

    @property
    def unsaved(self) -> bool:
        """What strangers caused waits to be saved (:meth:`save` it within a second)."""
        return self._unsaved

    def save(self) -> None:
        """Save what waits (nothing when nothing does)."""
        if self._unsaved:
            self._save()

    def _save_unless_strangers_only(self, link: int | None) -> None:
        """Save now what a session changed or any log entry not a stranger's; what strangers changed waits
        (:attr:`unsaved`). Time passing changes nothing to save: a restart lets it pass again, the same."""
        self._collect()
        session = link is not None and self.firmware.session(link).role is not None
        changed = self._changed()
        if self.pump.log.own_since(self.saved_log) or (session and changed):
            self._save()
        elif changed or self.pump.log.total > self.saved_log:
            self._unsaved = True

    def _changed(self) -> bool:
        """The pump's state changed since the last save, not only by time passing (every command is in
        the transaction memory; keys and PIN failures are the rest)."""
        now, saved = self.pump.state, self._saved
        return saved is None or any(
            getattr(now, name) is not getattr(saved, name) for name in _KEPT if name != "therapy"
        )

    def _collect(self) -> None:
        """What left the catheter tip, into the ledger (the store gets it with the next save)."""
        flows = [f for f in self.pump.take_delivered() if f.conc_ug_ml]
        self.ledger.extend(flows)
        self._flows.extend(flows)

    def _save(self) -> None:
        self._unsaved = False
        self._collect()
        flows, self._flows = self._flows, []
        facts = self.pump.take_facts()
        self._saved = self.pump.state
        if self.store is None:
            return
        log = self.pump.log.since(self.saved_log)
        strangers = self.pump.log.strangers_since(self.saved_log)
        self.store.save(
            self.pump.state,
            log,
            flows,
            self.hardware.as_json(),
            strangers=strangers,
            facts=facts,
            policy=self.pump.policy.values,
        )
        self.saved_log = self.pump.log.total

"""The therapy model: what the pump holds and delivers, as one immutable state.

``advance(state, to)`` delivers drug up to device time ``to``: outlet flows from
the reservoir run through the fluid path (:mod:`itbproto.core.therapy.fluid`) and the
state records what left the catheter tip. The effect of an accepted command is
:func:`itbproto.core.therapy.commands.apply`. Neither checks the safety rules (that is
:func:`itbproto.core.safety.evaluate`, which applies a command to see its
consequence), and neither reads a clock. The pump and the emulator run on this
model; the rule engine projects with it.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass, replace

from itbproto.core.therapy.battery import capacity_scaled, daily_drain_scaled, drain_scaled, spent_at
from itbproto.core.therapy.flows import SCALE, Flow, clip, joined, seconds_until_volume, volume_between
from itbproto.core.therapy.fluid import Path, push
from itbproto.core.therapy.profile import DeviceProfile, Drug
from itbproto.core.therapy.schedule import prescription_flows
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, Origin, PatientGroup, Phase, ScreeningResponse, TherapyMode
from itbproto.core.wire.message import Message
from itbproto.core.wire.messages import PatientRecord, Prescription
from itbproto.errors import TherapyStateError

__all__ = [
    "DELIVERY_HISTORY_S",
    "DOSE_HISTORY_S",
    "NEW_PATIENT",
    "REFILL_TIMEOUT_S",
    "ActiveBolus",
    "Battery",
    "BolusRecord",
    "DoseEntry",
    "RefillProgress",
    "Staged",
    "TherapyState",
    "advance",
    "digest",
    "planned_flows",
    "planned_tip_flows",
    "running",
]

EMPTY_PATH = Path()

#: delivery kept (the rules look back 24 h; a day more lets every window be checked)
DELIVERY_HISTORY_S = 2 * SCALE
#: programmed doses and patient records kept: the longest look-back a policy may ask for
DOSE_HISTORY_S = 7 * SCALE
#: a refill not confirmed within this time is aborted (the pump goes back to what it did)
REFILL_TIMEOUT_S = 3_600


class Battery(enum.Enum):
    OK = "ok"
    ERI = "eri"  # elective replacement indicator: replace soon
    EOS = "eos"  # end of service: delivery stops


@dataclass(frozen=True, slots=True)
class ActiveBolus:
    bolus_id: int
    kind: BolusKind
    start: int
    volume_ul: int
    flows: tuple[Flow, ...]

    @property
    def end(self) -> int:
        return self.flows[-1].end


@dataclass(frozen=True, slots=True)
class BolusRecord:
    """A bolus that was started (the rules count patient and screening boluses)."""

    start: int
    kind: BolusKind
    volume_ul: int
    dose_ng: int
    screening: bool = False  # a clinician bolus in the screening phase
    response: ScreeningResponse = ScreeningResponse.PENDING  # what a screening dose did


@dataclass(frozen=True, slots=True)
class DoseEntry:
    """From ``since``: the programmed daily dose (ng × 86 400) and its highest rate (ng/day)."""

    since: int
    daily_scaled: int
    peak_ng_day: int


@dataclass(frozen=True, slots=True)
class RefillProgress:
    refill_id: int
    expected_residual_ul: int
    previous_mode: TherapyMode
    started_at: int
    measured_ul: int | None = None
    staged_volume_ul: int | None = None
    staged_conc_ug_ml: int | None = None
    digest: int | None = None  # of the RefillStageDrug payload; the confirm must carry it


@dataclass(frozen=True, slots=True)
class Staged:
    """A prescription checked and held by the pump, awaiting the user's confirmation."""

    prescription: Prescription
    stage_id: int
    digest: int  # of the StagePrescription payload

    @property
    def commit(self) -> m.CommitPrescription:
        """The command that puts exactly this prescription in force."""
        return m.CommitPrescription(stage_id=self.stage_id, digest=self.digest)


def digest(request: Message) -> int:
    """CRC-32 (zlib's, CRC-32/ISO-HDLC) of a request's payload: what the confirm step must repeat."""
    return binascii.crc32(request.CODEC.encode(request))


#: a pump's record before a clinician sets one: screening, and the strictest category
NEW_PATIENT = PatientRecord(
    group=PatientGroup.CHILD,
    origin=Origin.CEREBRAL,
    risks=frozenset(),
    phase=Phase.SCREENING,
    screening_dose_ng=0,
    screening_effect_s=0,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TherapyState:
    """Everything the pump knows about therapy at device time ``now``. Integer units."""

    now: int
    profile: DeviceProfile
    drug: Drug
    concentration_ug_ml: int
    reservoir_scaled: int = 0  # µL × 86 400
    filled_at: int = 0  # when the drug now in the reservoir was put in (its stability runs from here)
    path: Path = EMPTY_PATH  # the fluid path, tip first
    catheter_ul: int = 0  # the catheter's share of the path (from the tip)
    mode: TherapyMode = TherapyMode.STOPPED
    record: PatientRecord = NEW_PATIENT
    records: tuple[tuple[int, PatientRecord], ...] = ()  # (since, record) in force in DOSE_HISTORY_S
    prescription: Prescription | None = None
    prescription_id: int = 0  # the stage id it was committed from; 0 when none is in force
    committed_at: int = 0
    staged: Staged | None = None
    suspended_until: int = 0  # 0: until resumed
    held_until: int = 0  # the pump holds delivery until then (DOSE-001 after surgery: DELIVERY_STOPPED)
    bolus: ActiveBolus | None = None
    boluses: tuple[BolusRecord, ...] = ()
    delivered: tuple[Flow, ...] = ()  # what left the catheter tip (DELIVERY_HISTORY_S)
    last_delivery_at: int = 0  # when drug last left the tip
    dose_log: tuple[DoseEntry, ...] = ()  # programmed doses in force in DOSE_HISTORY_S
    concentration_changed_at: int | None = None
    bridge_given: bool = False
    needs_priming: bool = False
    battery: Battery = Battery.OK  # latched by the charge (:mod:`itbproto.core.therapy.battery`)
    charge_scaled: int  # the battery's charge left, nC × 86 400
    motor_stalled: bool = False  # a stalled motor delivers nothing until it is cleared
    thresholds: m.AlarmThresholds
    alarms: tuple[m.AlarmRecord, ...] = ()
    refill: RefillProgress | None = None
    next_id: int = 1  # the next bolus, refill, stage or alarm id
    # device time of the latest delivery or applied command; the clock never goes back past it
    last_event_at: int = 0

    @classmethod
    def new(
        cls,
        *,
        now: int,
        profile: DeviceProfile,
        drug: Drug,
        concentration_ug_ml: int,
        reservoir_ul: int,
        record: PatientRecord = NEW_PATIENT,
    ) -> TherapyState:
        """A pump as set up: stopped, no prescription, the profile's alarm thresholds, its fluid path
        (tubing and a catheter of the profile's volume) full of the reservoir's drug."""
        path_ul = profile.pump_path_ul + profile.catheter_ul
        return cls(
            now=now,
            profile=profile,
            drug=drug,
            concentration_ug_ml=concentration_ug_ml,
            reservoir_scaled=reservoir_ul * SCALE,
            charge_scaled=capacity_scaled(profile),
            filled_at=now,
            path=Path.filled(path_ul, concentration_ug_ml),
            catheter_ul=profile.catheter_ul,
            record=record,
            records=((now, record),),
            thresholds=profile.thresholds,
            last_delivery_at=now,
            last_event_at=now,
        )

    @property
    def reservoir_ul(self) -> int:
        """Whole µL left (rounded down)."""
        return self.reservoir_scaled // SCALE

    @property
    def empty(self) -> bool:
        return self.reservoir_scaled <= 0

    @property
    def delivering(self) -> bool:
        """True when drug flows now: something programmed runs and nothing stops it (battery, reservoir,
        motor)."""
        if self.battery is Battery.EOS or self.empty or self.motor_stalled or self.held:
            return False
        return self.bolus is not None or (
            self.prescription is not None and self.delivery_mode is TherapyMode.INFUSING
        )

    @property
    def held(self) -> bool:
        """True while the pump itself holds delivery (a bridge waiting to start included)."""
        return self.held_until > self.now

    @property
    def delivery_mode(self) -> TherapyMode:
        """What delivery does (during a refill, what it did before): STOPPED, INFUSING, SUSPENDED, MRI."""
        if self.mode is TherapyMode.REFILL and self.refill is not None:
            return self.refill.previous_mode
        return self.mode

    @property
    def eri_reserve_scaled(self) -> int:
        """The charge at which the replacement indicator comes: the lead time at the programmed volume."""
        return self.thresholds.eri_lead_days * daily_drain_scaled(self.profile, self.prescription)

    @property
    def battery_days(self) -> int:
        """Whole days the battery lasts at the programmed daily volume (0 at end of service)."""
        if self.battery is Battery.EOS:
            return 0
        return self.charge_scaled // daily_drain_scaled(self.profile, self.prescription)

    @property
    def stability_ends_at(self) -> int:
        """When the drug in the reservoir passes its stability date."""
        return self.filled_at + self.drug.stability_days * SCALE

    def daily_dose_at(self, t: int) -> int | None:
        """Programmed daily dose (scaled) in force at ``t``; None if no prescription was."""
        entry = self.dose_entry_at(t)
        return entry.daily_scaled if entry is not None else None

    def dose_entry_at(self, t: int) -> DoseEntry | None:
        current = None
        for entry in self.dose_log:
            if entry.since <= t:
                current = entry
        return current

    def records_since(self, t: int) -> tuple[PatientRecord, ...]:
        """The patient records in force at some time in [t, now]: the limits use the strictest."""
        in_force = [record for since, record in self.records if since <= t][-1:]
        return (*in_force, *(record for since, record in self.records if since > t))


def planned_flows(state: TherapyState, start: int, end: int) -> tuple[Flow, ...]:
    """What the pump will push out of its reservoir over [start, end) if nothing changes (the
    reservoir level aside). A bridge bolus replaces the basal flow while it runs."""
    if state.battery is Battery.EOS or state.motor_stalled:
        return ()
    flows: tuple[Flow, ...] = ()
    bolus = state.bolus
    if bolus is not None:
        flows += clip(bolus.flows, start, end)
    p, mode = state.prescription, state.delivery_mode
    resume = {TherapyMode.INFUSING: start, TherapyMode.SUSPENDED: state.suspended_until or end}.get(mode, end)
    if p is None or max(start, resume) >= end:
        return flows
    basal = prescription_flows(p, max(start, resume), end)
    if bolus is not None and bolus.kind is BolusKind.BRIDGE:
        basal = clip(basal, start, bolus.start) + clip(basal, bolus.end, end)
    return flows + basal


def planned_tip_flows(state: TherapyState, end: int) -> tuple[Flow, ...]:
    """What will leave the catheter tip from now until ``end`` if nothing changes (reservoir aside), the
    motor running: what the safety limits weigh (:func:`running`)."""
    return push(state.path, planned_flows(running(state), state.now, end))[1]


def running(state: TherapyState) -> TherapyState:
    """``state`` with its motor running. A stalled motor runs again once the stall is cleared and then
    delivers what is planned: the limits weigh that, not the stall (nothing flowing would pass any plan)."""
    return replace(state, motor_stalled=False) if state.motor_stalled else state


def _cut_at_volume(flows: tuple[Flow, ...], start: int, volume_scaled: int) -> tuple[Flow, ...]:
    """``flows`` truncated where they have delivered ``volume_scaled``; one last second carries the rest."""
    seconds = seconds_until_volume(flows, start, volume_scaled)
    if seconds is None:
        return flows
    out = clip(flows, start, start + seconds)
    rest = volume_scaled - volume_between(flows, start, start + seconds)
    if rest:
        out += (Flow(start + seconds, start + seconds + 1, rest, flows[0].conc_ug_ml),)
    return out


def advance(state: TherapyState, to: int) -> tuple[TherapyState, tuple[Flow, ...]]:
    """Deliver from ``state.now`` to ``to``; return the new state and what left the catheter tip (saline
    too; the state keeps the drug in ``delivered``). The battery drains on the way: the replacement
    indicator latches, and at end of service delivery stops, each at its own second."""
    if to < state.now:
        raise TherapyStateError(f"time runs forward: {to} < {state.now}")
    outlet = tuple(f for f in planned_flows(state, state.now, to) if f.rate_ul_day)
    used = sum(f.volume_scaled for f in outlet)
    if used > state.reservoir_scaled:
        outlet = _cut_at_volume(outlet, state.now, state.reservoir_scaled)
        used = state.reservoir_scaled
    charge, battery = state.charge_scaled, state.battery
    if battery is not Battery.EOS:
        level = state.eri_reserve_scaled if battery is Battery.OK else 0
        charge -= drain_scaled(state.profile, to - state.now, used)
        if charge <= level:
            at = spent_at(state.profile, outlet, state.now, to, state.charge_scaled - level)
            if at < to:
                return _split(state, at, to)
            battery = Battery.EOS if charge <= 0 else Battery.ERI
    path, tip = push(state.path, outlet)
    drug = tuple(f for f in tip if f.conc_ug_ml)
    remaining = state.reservoir_scaled - used
    bolus = state.bolus
    if bolus is not None and (bolus.end <= to or remaining == 0):
        bolus = None  # delivered, or nothing left to deliver it from
    mode = state.mode
    if mode is TherapyMode.SUSPENDED and state.suspended_until and state.suspended_until <= to:
        mode = TherapyMode.INFUSING
    keep = to - DELIVERY_HISTORY_S
    kept = tuple(f for f in state.delivered if f.end > keep)  # (what goes on as it was joins its last flow)
    new = replace(
        state,
        now=to,
        reservoir_scaled=remaining,
        charge_scaled=max(charge, 0),
        battery=battery,
        path=path,
        delivered=kept[:-1] + joined((*kept[-1:], *drug)),
        last_delivery_at=max(state.last_delivery_at, max((f.end for f in drug), default=0)),
        boluses=tuple(b for b in state.boluses if b.start > keep or b.screening),
        dose_log=_prune(state.dose_log, to - DOSE_HISTORY_S),
        records=_prune_records(state.records, to - DOSE_HISTORY_S),
        bolus=bolus,
        mode=mode,
        suspended_until=state.suspended_until if _suspended(mode, state.refill) else 0,
        last_event_at=max(state.last_event_at, max((f.end for f in outlet), default=0)),
    )
    return new, tip


def _suspended(mode: TherapyMode, refill: RefillProgress | None) -> bool:
    """Suspended, or in a refill begun while suspended (it keeps the time it resumes at)."""
    return TherapyMode.SUSPENDED in (mode, refill.previous_mode if refill is not None else None)


def _split(state: TherapyState, at: int, to: int) -> tuple[TherapyState, tuple[Flow, ...]]:
    """Advance to ``at``, where the battery reaches a level, then on to ``to``."""
    first, done = advance(state, at)
    second, more = advance(first, to)
    return second, done + more


def _prune(log: tuple[DoseEntry, ...], keep: int) -> tuple[DoseEntry, ...]:
    """Entries after ``keep`` and the one in force at ``keep``."""
    older = [entry for entry in log if entry.since <= keep]
    return (*older[-1:], *(entry for entry in log if entry.since > keep))


def _prune_records(
    records: tuple[tuple[int, PatientRecord], ...], keep: int
) -> tuple[tuple[int, PatientRecord], ...]:
    older = [entry for entry in records if entry[0] <= keep]
    return (*older[-1:], *(entry for entry in records if entry[0] > keep))

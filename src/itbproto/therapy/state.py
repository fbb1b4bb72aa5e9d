"""The therapy model: what the pump holds and delivers, as an immutable state and pure transitions.

``apply(state, command)`` is the effect of an *accepted* command;
``advance(state, to)`` delivers drug up to device time ``to`` and returns the
flows delivered. Neither checks the safety rules (that is
:func:`itbproto.safety.evaluate`, which calls ``apply`` to see a command's
consequence), and neither reads a clock. The device's state machine and the
emulator run on this model; the rule engine projects with it.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass, replace

from itbproto.errors import StaleStageError, TherapyStateError, UnknownIdError
from itbproto.therapy.alarms import quiet
from itbproto.therapy.flows import (
    SCALE,
    Flow,
    bolus_dose_ng,
    bolus_flows,
    clip,
    seconds_until_volume,
    volume_between,
)
from itbproto.therapy.profile import DeviceProfile, Drug
from itbproto.therapy.schedule import daily_dose_scaled, prescription_flows, rescale
from itbproto.wire import messages as m
from itbproto.wire.enums import BolusKind, PrescriptionMode, TherapyMode
from itbproto.wire.message import Message
from itbproto.wire.messages import Prescription

__all__ = [
    "HISTORY_S",
    "ActiveBolus",
    "Battery",
    "BolusRecord",
    "RefillProgress",
    "Staged",
    "TherapyState",
    "advance",
    "apply",
    "digest",
    "planned_flows",
]

HISTORY_S = 2 * SCALE  # how much delivery history the state keeps (the rules look back 24 h)


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
    screening: bool = False  # a clinician bolus with no prescription in force


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


@dataclass(frozen=True, slots=True, kw_only=True)
class TherapyState:
    """Everything the pump knows about therapy at device time ``now``. Integer units."""

    now: int
    profile: DeviceProfile
    drug: Drug
    concentration_ug_ml: int
    reservoir_scaled: int = 0  # µL × 86 400
    mode: TherapyMode = TherapyMode.STOPPED
    prescription: Prescription | None = None
    prescription_id: int = 0  # the stage id it was committed from; 0 when none is in force
    committed_at: int = 0
    staged: Staged | None = None
    suspended_until: int = 0  # 0: until resumed
    bolus: ActiveBolus | None = None
    boluses: tuple[BolusRecord, ...] = ()
    delivered: tuple[Flow, ...] = ()
    dose_log: tuple[tuple[int, int], ...] = ()  # (since, programmed daily dose scaled)
    concentration_changed_at: int | None = None
    bridge_given: bool = False
    needs_priming: bool = False
    battery: Battery = Battery.OK
    motor_stalled: bool = False  # a stalled motor delivers nothing until it is cleared
    thresholds: m.AlarmThresholds
    alarms: tuple[m.AlarmRecord, ...] = ()
    refill: RefillProgress | None = None
    next_id: int = 1  # the next bolus, refill, stage or alarm id
    # device time of the latest delivery or applied command; the clock never goes back past it
    last_event_at: int = 0

    @classmethod
    def new(
        cls, *, now: int, profile: DeviceProfile, drug: Drug, concentration_ug_ml: int, reservoir_ul: int
    ) -> TherapyState:
        """A pump as delivered: stopped, no prescription, the profile's alarm thresholds."""
        return cls(
            now=now,
            profile=profile,
            drug=drug,
            concentration_ug_ml=concentration_ug_ml,
            reservoir_scaled=reservoir_ul * SCALE,
            thresholds=profile.thresholds,
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
        if self.battery is Battery.EOS or self.empty or self.motor_stalled:
            return False
        return self.bolus is not None or (
            self.prescription is not None and self.delivery_mode is TherapyMode.INFUSING
        )

    @property
    def delivery_mode(self) -> TherapyMode:
        """STOPPED, INFUSING or SUSPENDED: what delivery does (during a refill, what it did before)."""
        if self.mode is TherapyMode.REFILL and self.refill is not None:
            return self.refill.previous_mode
        return self.mode

    def daily_dose_at(self, t: int) -> int | None:
        """Programmed daily dose (scaled) in force at ``t``; None if no prescription was."""
        current = None
        for since, dose in self.dose_log:
            if since <= t:
                current = dose
        return current


def planned_flows(state: TherapyState, start: int, end: int) -> tuple[Flow, ...]:
    """What the pump will deliver over [start, end) if nothing changes, ignoring the reservoir level."""
    if state.battery is Battery.EOS or state.motor_stalled:
        return ()
    flows: tuple[Flow, ...] = ()
    if state.bolus is not None:
        flows += clip(state.bolus.flows, start, end)
    p = state.prescription
    mode = state.delivery_mode
    if p is not None and mode is not TherapyMode.STOPPED:
        resume = start
        if mode is TherapyMode.SUSPENDED:
            resume = state.suspended_until if state.suspended_until else end
        if resume < end:
            flows += prescription_flows(p, max(start, resume), end)
    return flows


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
    """Deliver from ``state.now`` to ``to``; return the new state and the flows delivered."""
    if to < state.now:
        raise TherapyStateError(f"time runs forward: {to} < {state.now}")
    if state.mode is TherapyMode.SUSPENDED and state.now < state.suspended_until < to:
        first, done = advance(state, state.suspended_until)
        second, more = advance(replace(first, mode=TherapyMode.INFUSING, suspended_until=0), to)
        return second, done + more
    flows = tuple(f for f in planned_flows(state, state.now, to) if f.rate_ul_day)
    used = sum(f.volume_scaled for f in flows)
    if used > state.reservoir_scaled:
        flows = _cut_at_volume(flows, state.now, state.reservoir_scaled)
        used = state.reservoir_scaled
    remaining = state.reservoir_scaled - used
    bolus = state.bolus
    if bolus is not None and (bolus.end <= to or remaining == 0):
        bolus = None  # delivered, or nothing left to deliver it from
    mode = state.mode
    if mode is TherapyMode.SUSPENDED and state.suspended_until and state.suspended_until <= to:
        mode = TherapyMode.INFUSING
    keep = to - HISTORY_S
    new = replace(
        state,
        now=to,
        reservoir_scaled=remaining,
        delivered=tuple(f for f in state.delivered if f.end > keep) + flows,
        boluses=tuple(b for b in state.boluses if b.start > keep or b.screening),
        dose_log=_prune_dose_log(state.dose_log, to - SCALE),
        bolus=bolus,
        mode=mode,
        suspended_until=state.suspended_until if mode is TherapyMode.SUSPENDED else 0,
        last_event_at=max(state.last_event_at, max((f.end for f in flows), default=0)),
    )
    return new, flows


def _prune_dose_log(log: tuple[tuple[int, int], ...], keep: int) -> tuple[tuple[int, int], ...]:
    """Entries after ``keep`` and the one in force at ``keep`` (the titration rules look back 24 h)."""
    older = [entry for entry in log if entry[0] <= keep]
    return (*older[-1:], *(entry for entry in log if entry[0] > keep))


def _with_prescription(state: TherapyState, p: Prescription, prescription_id: int) -> TherapyState:
    dose = daily_dose_scaled(p)
    log = state.dose_log if state.daily_dose_at(state.now) == dose else (*state.dose_log, (state.now, dose))
    mode = TherapyMode.INFUSING if state.mode is TherapyMode.STOPPED else state.mode
    return replace(
        state,
        prescription=p,
        prescription_id=prescription_id,
        committed_at=state.now,
        staged=None,
        dose_log=log,
        mode=mode,
    )


def _commit(state: TherapyState, cmd: m.CommitPrescription) -> TherapyState:
    staged = state.staged
    if staged is None:
        raise TherapyStateError("no staged prescription to commit")
    if (cmd.stage_id, cmd.digest) != (staged.stage_id, staged.digest):
        raise StaleStageError("stage id or digest does not match the staged prescription")
    return _with_prescription(state, staged.prescription, staged.stage_id)


def _bolus(state: TherapyState, cmd: m.BolusStart) -> TherapyState:
    if state.bolus is not None and state.bolus.end > state.now:
        raise TherapyStateError("a bolus is already being delivered")
    if state.mode in (TherapyMode.SUSPENDED, TherapyMode.REFILL):
        raise TherapyStateError(f"no bolus while {state.mode.name.lower()}")
    flows = bolus_flows(cmd.volume_ul, cmd.duration_s, state.now, state.concentration_ug_ml)
    active = ActiveBolus(state.next_id, cmd.kind, state.now, cmd.volume_ul, flows)
    screening = cmd.kind is BolusKind.CLINICIAN and state.prescription is None
    dose = bolus_dose_ng(cmd.volume_ul, state.concentration_ug_ml)
    record = BolusRecord(state.now, cmd.kind, cmd.volume_ul, dose, screening)
    return replace(
        state,
        bolus=active,
        boluses=(*state.boluses, record),
        next_id=state.next_id + 1,
        needs_priming=state.needs_priming and cmd.kind is not BolusKind.PRIMING,
        bridge_given=state.bridge_given or cmd.kind is BolusKind.BRIDGE,
    )


def _refill(state: TherapyState, refill_id: int) -> RefillProgress:
    if state.refill is None:
        raise TherapyStateError("no refill in progress")
    if state.refill.refill_id != refill_id:
        raise UnknownIdError(f"no refill {refill_id} in progress")
    return state.refill


def _confirm_refill(state: TherapyState, cmd: m.RefillConfirm) -> TherapyState:
    refill = _refill(state, cmd.refill_id)
    if refill.staged_volume_ul is None or refill.staged_conc_ug_ml is None:
        raise TherapyStateError("refill not staged")
    if cmd.digest != refill.digest:
        raise StaleStageError("digest does not match the staged refill")
    conc = refill.staged_conc_ug_ml
    new = replace(
        state,
        refill=None,
        mode=refill.previous_mode,
        reservoir_scaled=refill.staged_volume_ul * SCALE,
        concentration_ug_ml=conc,
    )
    if conc == state.concentration_ug_ml:
        return new
    new = replace(new, concentration_changed_at=state.now, bridge_given=False)
    if state.prescription is None:
        return new
    rescaled = rescale(state.prescription, conc, state.profile.rate_step_ul_day)
    return _with_prescription(new, rescaled, state.prescription_id)


def _set_rate(state: TherapyState, rate: int) -> TherapyState:
    p = state.prescription
    if p is None or p.mode is not PrescriptionMode.CONTINUOUS:
        raise TherapyStateError("SetRate needs a continuous prescription in force")
    steps = (m.FlexStep(start_s=0, rate_ul_day=rate),)
    return _with_prescription(state, replace(p, steps=steps), state.prescription_id)


def apply(state: TherapyState, command: Message) -> TherapyState:
    """The state after an accepted ``command`` at ``state.now``; TherapyStateError if it cannot apply."""
    after = _apply(state, command)
    if after is state or isinstance(command, m.SetClock):
        return after
    return replace(after, last_event_at=max(after.last_event_at, state.now))


def _apply(state: TherapyState, command: Message) -> TherapyState:
    match command:
        case m.StagePrescription(prescription=p):
            staged = Staged(p, state.next_id, digest(command))
            return replace(state, staged=staged, next_id=state.next_id + 1)
        case m.CommitPrescription():
            return _commit(state, command)
        case m.SetRate(rate_ul_day=rate):
            return _set_rate(state, rate)
        case m.BolusStart():
            return _bolus(state, command)
        case m.BolusCancel(bolus_id=bolus_id):
            if state.bolus is None:
                raise TherapyStateError("no bolus to cancel")
            if state.bolus.bolus_id != bolus_id:
                raise UnknownIdError(f"no bolus {bolus_id} running")
            return replace(state, bolus=None)
        case m.Suspend(duration_s=duration):
            if state.mode in (TherapyMode.STOPPED, TherapyMode.REFILL):
                raise TherapyStateError(f"cannot suspend while {state.mode.name.lower()}")
            until = state.now + duration if duration else 0
            return replace(state, mode=TherapyMode.SUSPENDED, suspended_until=until, bolus=None)
        case m.Resume():
            if state.prescription is None or state.mode not in (TherapyMode.SUSPENDED, TherapyMode.STOPPED):
                raise TherapyStateError("nothing to resume")
            return replace(state, mode=TherapyMode.INFUSING, suspended_until=0)
        case m.RefillBegin():
            if state.refill is not None:
                raise TherapyStateError("a refill is already in progress")
            progress = RefillProgress(state.next_id, state.reservoir_ul, state.mode, state.now)
            return replace(state, refill=progress, mode=TherapyMode.REFILL, next_id=state.next_id + 1)
        case m.RefillResidual(refill_id=rid, measured_ul=measured):
            return replace(state, refill=replace(_refill(state, rid), measured_ul=measured))
        case m.RefillStageDrug(refill_id=rid, volume_ul=volume, concentration_ug_ml=conc):
            refill = _refill(state, rid)
            if refill.measured_ul is None:
                raise TherapyStateError("record the residual volume first")
            drug = replace(refill, staged_volume_ul=volume, staged_conc_ug_ml=conc, digest=digest(command))
            return replace(state, refill=drug)
        case m.RefillConfirm():
            return _confirm_refill(state, command)
        case m.RefillAbort(refill_id=rid):
            return replace(state, refill=None, mode=_refill(state, rid).previous_mode)
        case m.AlarmAcknowledge(alarm_id=alarm_id):
            return replace(state, alarms=quiet(state.alarms, alarm_id, state.now, None, state.thresholds))
        case m.AlarmSilence(alarm_id=alarm_id, duration_s=duration):
            until = state.now + duration
            return replace(state, alarms=quiet(state.alarms, alarm_id, state.now, until, state.thresholds))
        case m.SetThresholds(thresholds=thresholds):
            return replace(state, thresholds=thresholds)
        case m.SetClock(device_time=t):
            return replace(state, now=t)
        case m.RecordProcedure():
            return replace(state, needs_priming=True)
        case _:
            return state

"""What an accepted command does to the therapy state: ``apply(state, command) -> state``.

Pure. A command that cannot apply in the state at all raises
:class:`~itbproto.errors.TherapyStateError` (or :class:`UnknownIdError`,
:class:`StaleStageError`); whether it *should* apply is the safety rules' call.
"""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.therapy.alarms import quiet
from itbproto.core.therapy.flows import SCALE, bolus_dose_ng, bolus_flows
from itbproto.core.therapy.fluid import Path
from itbproto.core.therapy.schedule import daily_dose_scaled, peak_ng_day, rescale
from itbproto.core.therapy.state import (
    ActiveBolus,
    BolusRecord,
    DoseEntry,
    RefillProgress,
    Staged,
    TherapyState,
    digest,
)
from itbproto.core.therapy.window import shortest_hold_s
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    BolusKind,
    Phase,
    PrescriptionMode,
    Procedure,
    PumpKind,
    ScreeningResponse,
    TherapyMode,
)
from itbproto.core.wire.message import Message
from itbproto.core.wire.messages import PatientRecord, Prescription
from itbproto.errors import StaleStageError, TherapyStateError, UnknownIdError
from itbproto.units import Rounding, divide

__all__ = ["apply", "bridge_duration_s"]

_NO_BOLUS = (TherapyMode.SUSPENDED, TherapyMode.REFILL, TherapyMode.MRI)


def apply(state: TherapyState, command: Message) -> TherapyState:
    """The state after an accepted ``command`` at ``state.now``; TherapyStateError if it cannot apply."""
    after = _apply(state, command)
    if after is state or isinstance(command, m.SetClock):
        return after
    return replace(after, last_event_at=max(after.last_event_at, state.now))


def _apply(state: TherapyState, command: Message) -> TherapyState:
    match command:
        case m.StagePrescription(prescription=p):
            return replace(state, staged=Staged(p, state.next_id, digest(command)), next_id=state.next_id + 1)
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
            if state.mode not in (TherapyMode.INFUSING, TherapyMode.SUSPENDED):
                raise TherapyStateError(f"cannot suspend while {state.mode.name.lower()}")
            until = state.now + duration if duration else 0
            return replace(state, mode=TherapyMode.SUSPENDED, suspended_until=until, held_until=0, bolus=None)
        case m.Resume():
            if state.prescription is None or state.mode not in (TherapyMode.SUSPENDED, TherapyMode.STOPPED):
                raise TherapyStateError("nothing to resume")
            return replace(state, mode=TherapyMode.INFUSING, suspended_until=0, held_until=0)
        case m.RefillBegin():
            if state.refill is not None:
                raise TherapyStateError("a refill is already in progress")
            if state.bolus is not None:  # (what it pushes is the reservoir's drug: it must not change)
                raise TherapyStateError("cannot begin a refill while a bolus runs")
            if state.mode is TherapyMode.MRI:  # (a valve-gated pump is emptied for the scan: MRI-001)
                raise TherapyStateError("cannot begin a refill during an MRI: end it first")
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
            return _procedure(state, command)
        case m.SetPatientRecord(group=group, origin=origin, risks=risks, phase=phase):
            return _with_record(
                state, replace(state.record, group=group, origin=origin, risks=risks, phase=phase)
            )
        case m.RecordScreeningResponse():
            return _screening_response(state, command)
        case m.MriBegin():
            if state.mode not in (TherapyMode.STOPPED, TherapyMode.INFUSING, TherapyMode.SUSPENDED):
                raise TherapyStateError(f"cannot prepare for an MRI while {state.mode.name.lower()}")
            emptied = 0 if state.profile.pump_kind is PumpKind.VALVE else state.reservoir_scaled
            return replace(
                state,
                mode=TherapyMode.MRI,
                bolus=None,
                suspended_until=0,
                held_until=0,
                reservoir_scaled=emptied,
            )
        case m.MriEnd():
            if state.mode is not TherapyMode.MRI:
                raise TherapyStateError("no MRI in progress")
            return replace(state, mode=TherapyMode.STOPPED)
        case _:
            return state


def _with_prescription(state: TherapyState, p: Prescription, prescription_id: int) -> TherapyState:
    entry = DoseEntry(state.now, daily_dose_scaled(p), peak_ng_day(p))
    current = state.dose_entry_at(state.now)
    same = current is not None and (current.daily_scaled, current.peak_ng_day) == (
        entry.daily_scaled,
        entry.peak_ng_day,
    )
    mode = TherapyMode.INFUSING if state.mode is TherapyMode.STOPPED else state.mode
    return replace(
        state,
        prescription=p,
        prescription_id=prescription_id,
        committed_at=state.now,
        staged=None,
        dose_log=state.dose_log if same else (*state.dose_log, entry),
        mode=mode,
    )


def _commit(state: TherapyState, cmd: m.CommitPrescription) -> TherapyState:
    staged = state.staged
    if staged is None:
        raise TherapyStateError("no staged prescription to commit")
    if (cmd.stage_id, cmd.digest) != (staged.stage_id, staged.digest):
        raise StaleStageError("stage id or digest does not match the staged prescription")
    return _with_prescription(state, staged.prescription, staged.stage_id)


def _set_rate(state: TherapyState, rate: int) -> TherapyState:
    p = state.prescription
    if p is None or p.mode is not PrescriptionMode.CONTINUOUS:
        raise TherapyStateError("SetRate needs a continuous prescription in force")
    return _with_prescription(
        state, replace(p, steps=(m.FlexStep(start_s=0, rate_ul_day=rate),)), state.prescription_id
    )


def _bolus(state: TherapyState, cmd: m.BolusStart) -> TherapyState:
    if state.bolus is not None and state.bolus.end > state.now:
        raise TherapyStateError("a bolus is already being delivered")
    if state.mode in _NO_BOLUS:
        raise TherapyStateError(f"no bolus while {state.mode.name.lower()}")
    return _start_bolus(state, cmd.kind, cmd.volume_ul, cmd.duration_s)


def _start_bolus(
    state: TherapyState, kind: BolusKind, volume_ul: int, duration_s: int, start: int | None = None
) -> TherapyState:
    """``state`` with a bolus running from ``start`` (now unless the pump holds it back)."""
    at = state.now if start is None else start
    flows = bolus_flows(volume_ul, duration_s, at, state.concentration_ug_ml)
    active = ActiveBolus(state.next_id, kind, at, volume_ul, flows)
    screening = kind is BolusKind.CLINICIAN and state.record.phase is Phase.SCREENING
    record = BolusRecord(at, kind, volume_ul, bolus_dose_ng(volume_ul, state.concentration_ug_ml), screening)
    return replace(
        state,
        bolus=active,
        boluses=(*state.boluses, record),
        next_id=state.next_id + 1,
        needs_priming=state.needs_priming and kind is not BolusKind.PRIMING,
        bridge_given=state.bridge_given or kind is BolusKind.BRIDGE,
    )


def _refill(state: TherapyState, refill_id: int) -> RefillProgress:
    if state.refill is None:
        raise TherapyStateError("no refill in progress")
    if state.refill.refill_id != refill_id:
        raise UnknownIdError(f"no refill {refill_id} in progress")
    return state.refill


def bridge_duration_s(state: TherapyState) -> int:
    """How long a bridge takes to push the fluid path out: its strongest drug at the prescription's daily
    dose (so where the path is mixed, no part leaves the tip faster than that), never faster than the pump's
    bolus rate (both rounded up). As long as that takes: at a low dose, days (the path is then pushed at the
    old volumetric rate, as the basal flow would have been)."""
    assert state.prescription is not None
    path = state.path
    daily = daily_dose_scaled(state.prescription)
    strongest = max((s.conc_ug_ml for s in path.segments), default=0)
    by_dose = divide(path.volume_scaled * strongest * SCALE, daily, Rounding.UP) if daily else SCALE
    by_rate = divide(path.volume_scaled, state.profile.max_bolus_rate_ul_day, Rounding.UP)
    return max(1, by_dose, by_rate)


def _confirm_refill(state: TherapyState, cmd: m.RefillConfirm) -> TherapyState:
    refill = _refill(state, cmd.refill_id)
    if refill.staged_volume_ul is None or refill.staged_conc_ug_ml is None:
        raise TherapyStateError("refill not staged")
    if cmd.digest != refill.digest:
        raise StaleStageError("digest does not match the staged refill")
    conc, old = refill.staged_conc_ug_ml, state.prescription
    new = replace(
        state,
        refill=None,
        mode=refill.previous_mode,
        reservoir_scaled=refill.staged_volume_ul * SCALE,
        concentration_ug_ml=conc,
        filled_at=state.now,
    )
    if conc == state.concentration_ug_ml:
        if cmd.bridge:
            raise TherapyStateError("the concentration does not change: there is nothing to bridge")
        return new
    new = replace(new, concentration_changed_at=state.now, bridge_given=False)
    if old is None:
        return new
    new = _with_prescription(new, rescale(old, conc, state.profile.rate_step_ul_day), state.prescription_id)
    if not cmd.bridge:
        return new
    if new.mode is not TherapyMode.INFUSING:
        raise TherapyStateError("a bridge needs delivery running")
    assert new.prescription is not None
    path_ul = divide(new.path.volume_scaled, SCALE, Rounding.DOWN)
    return _start_bolus(new, BolusKind.BRIDGE, path_ul, bridge_duration_s(new))


def _procedure(state: TherapyState, cmd: m.RecordProcedure) -> TherapyState:
    """Implant and catheter work leave the new parts of the path full of saline, to be primed: a new
    catheter (implant, revision), or a new pump's tubing and the old catheter, aspirated (replacement).
    A running bolus ends: its rate was set for the path as it was (a bridge would push the new drug); a
    bridge whose old drug is still in the pump's tubing starts again over the new path. A shorter path
    brings drug to the tip sooner: if that would put more than the limit into a 24 h window that still
    holds drug from before, the pump holds delivery (and the bridge) for the shortest time that keeps
    every window within it (DOSE-001; the DELIVERY_STOPPED alarm sounds while it lasts)."""
    pump_part_ul = state.profile.pump_path_ul
    _, pump = state.path.split(state.catheter_ul * SCALE)
    catheter_ul = state.catheter_ul
    if cmd.procedure is not Procedure.PUMP_REPLACEMENT:
        catheter_ul = cmd.catheter_volume_ul or state.profile.catheter_ul
    if cmd.procedure is Procedure.CATHETER_REVISION:
        path = Path.filled(catheter_ul, 0) + pump
    else:
        path = Path.filled(catheter_ul + pump_part_ul, 0)
    after = replace(state, path=path, catheter_ul=catheter_ul, needs_priming=True, bolus=None)
    bridging = state.bolus is not None and state.bolus.kind is BolusKind.BRIDGE
    old_drug = any(seg.conc_ug_ml not in (0, state.concentration_ug_ml) for seg in path.segments)
    # the old drug left in the pump's tubing: bridge it out over the new path
    bridge = None
    if bridging and old_drug:
        bridge = (divide(path.volume_scaled, SCALE, Rounding.DOWN), bridge_duration_s(after))
    timed = state.delivery_mode is TherapyMode.SUSPENDED and state.suspended_until
    resumes = state.suspended_until - state.now if timed else 0  # a timed suspension holds it that long

    def held(seconds: int) -> TherapyState:
        out = after if seconds <= resumes else _held(after, after.now + seconds)
        if bridge is not None:
            out = _start_bolus(out, BolusKind.BRIDGE, *bridge, start=after.now + seconds)
        return out

    return held(shortest_hold_s(held, resumes))


def _held(state: TherapyState, until: int) -> TherapyState:
    """``state`` with delivery held by the pump until ``until`` (during a refill, once it is over)."""
    if state.refill is not None:
        refill = replace(state.refill, previous_mode=TherapyMode.SUSPENDED)
        return replace(state, refill=refill, suspended_until=until, held_until=until)
    return replace(state, mode=TherapyMode.SUSPENDED, suspended_until=until, held_until=until)


def _with_record(state: TherapyState, record: PatientRecord) -> TherapyState:
    if record == state.record:
        return state
    return replace(state, record=record, records=(*state.records, (state.now, record)))


def _screening_response(state: TherapyState, cmd: m.RecordScreeningResponse) -> TherapyState:
    if cmd.response is ScreeningResponse.PENDING:
        raise TherapyStateError("record NONE or EFFECTIVE")
    last = next((i for i in range(len(state.boluses) - 1, -1, -1) if state.boluses[i].screening), None)
    if last is None or state.boluses[last].response is not ScreeningResponse.PENDING:
        raise TherapyStateError("no screening dose awaits its response")
    dose = state.boluses[last]
    boluses = (*state.boluses[:last], replace(dose, response=cmd.response), *state.boluses[last + 1 :])
    after = replace(state, boluses=boluses)
    if cmd.response is ScreeningResponse.EFFECTIVE:
        record = replace(state.record, screening_dose_ng=dose.dose_ng, screening_effect_s=cmd.effect_s)
        after = _with_record(after, record)
    return after

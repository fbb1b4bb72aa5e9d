"""The device and the session: alarms, battery, clock, stops and restarts, the therapy path, MRI."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

from itbproto.core.safety.rules.common import at_risk, flushed_at, resuming, span
from itbproto.core.safety.rules.refill import residual_needs_acknowledgement
from itbproto.core.safety.verdict import Context
from itbproto.core.therapy.flows import clip
from itbproto.core.therapy.schedule import prescription_flows
from itbproto.core.therapy.state import Battery, TherapyState, planned_tip_flows
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, Phase, PumpKind, Severity
from itbproto.core.wire.message import Message
from itbproto.units import Volume

__all__ = [
    "critical_silence",
    "end_of_service",
    "eri_lead",
    "low_reservoir_lead",
    "mri_interruption",
    "mri_prepared",
    "no_silent_stop",
    "phase_order",
    "reannunciation_period",
    "small_clock_step",
    "suspend_acknowledged",
    "tip_gap",
]


def end_of_service(ctx: Context[Message]) -> Iterator[str]:
    """BATT-001: nothing starts or changes delivery at end of service."""
    if ctx.before.battery is Battery.EOS:
        yield "the battery is at end of service: the pump delivers nothing"


def low_reservoir_lead(ctx: Context[m.SetThresholds]) -> Iterator[str]:
    """RES-001: the low-reservoir alarm no later than the policy's minimum."""
    t = ctx.command.thresholds
    min_ul = max(ctx.param("RES-001", "min_low_reservoir_ul"), 0)
    min_days = ctx.param("RES-001", "min_low_reservoir_days")
    if t.low_reservoir_ul < min_ul:
        yield f"low-reservoir alarm at {Volume(t.low_reservoir_ul)} is later than {Volume(min_ul)}"
    if t.low_reservoir_days < min_days:
        yield f"low-reservoir alarm {t.low_reservoir_days} days before empty is later than {min_days} days"


def eri_lead(ctx: Context[m.SetThresholds]) -> Iterator[str]:
    """BATT-002: the replacement warning early enough."""
    days, minimum = ctx.command.thresholds.eri_lead_days, ctx.param("BATT-002", "min_eri_lead_days")
    if days < minimum:
        yield f"ERI {days} days before end of service is later than {minimum} days"


def reannunciation_period(ctx: Context[m.SetThresholds]) -> Iterator[str]:
    """ALARM-001: critical alarms repeat at most every so often."""
    period, limit = ctx.command.thresholds.reannunciate_s, ctx.param("ALARM-001", "max_reannunciate_s")
    if period > limit:
        yield f"critical alarms would repeat every {period} s; at most every {limit} s"


def critical_silence(ctx: Context[m.AlarmSilence]) -> Iterator[str]:
    """ALARM-001: a critical alarm silenced for at most the period."""
    cmd, state = ctx.command, ctx.before
    alarm = next((a for a in state.alarms if a.alarm_id == cmd.alarm_id), None)
    period = min(state.thresholds.reannunciate_s, ctx.param("ALARM-001", "max_reannunciate_s"))
    if alarm is not None and alarm.severity is Severity.CRITICAL and cmd.duration_s > period:
        yield f"a critical alarm is silenced for at most {period} s, not {cmd.duration_s} s"


def small_clock_step(ctx: Context[m.SetClock]) -> Iterator[str]:
    """CLOCK-001: small steps, never back past a recorded event."""
    cmd, state = ctx.command, ctx.before
    step, limit = cmd.device_time - state.now, ctx.param("CLOCK-001", "max_step_s")
    if abs(step) > limit:
        yield f"the clock would move by {step} s; at most {limit} s"
    if cmd.device_time < state.last_event_at:
        yield f"the clock would move back past a recorded event at {state.last_event_at}"


def no_silent_stop(ctx: Context[m.SessionEnd]) -> Iterator[str]:
    """STOP-001 (acknowledge): a session ends while nothing is delivered."""
    if not ctx.before.delivering:
        yield (
            "nothing is being delivered: ending the session leaves the patient without drug"
            f"{at_risk(ctx.before)}"
        )


def suspend_acknowledged(ctx: Context[m.Suspend]) -> Iterator[str]:
    """STOP-002 (acknowledge): suspending delivery."""
    duration = ctx.command.duration_s
    yield (
        f"delivery stops {f'for {span(duration)}' if duration else 'until resumed'}: "
        f"a withdrawal risk{at_risk(ctx.before)}"
    )


def tip_gap(ctx: Context[Message]) -> Iterator[str]:
    """FLOW-001 (acknowledge): the tip gets much less than programmed until the path clears (from when
    delivery runs: a timed suspension is STOP-002's)."""
    found = resuming(ctx)
    if found is None or found[0].prescription is None:
        return
    state, at = found
    end = flushed_at(state)
    low, tip_dose, programmed = _shortfall(state, at, end, ctx.param("FLOW-001", "min_pct"))
    if low > ctx.param("FLOW-001", "max_gap_s"):
        share = tip_dose * 100 // programmed if programmed else 0
        yield (
            f"for {span(low)} the catheter tip gets less than {ctx.param('FLOW-001', 'min_pct')} % of the "
            f"programmed dose ({share} % overall) until the drug now pushed in reaches it{at_risk(state)}: "
            "prime or bridge"
        )


def _shortfall(state: TherapyState, start: int, end: int, min_pct: int) -> tuple[int, int, int]:
    """Seconds in [start, end) when the tip's dose rate is below ``min_pct`` % of the programmed one; the
    tip's and the programmed dose over [start, end) (scaled)."""
    assert state.prescription is not None
    tip = clip(planned_tip_flows(state, end), start, end)
    programmed = prescription_flows(state.prescription, start, end)
    edges = sorted(
        {start, end, *(f.start for f in (*tip, *programmed)), *(f.end for f in (*tip, *programmed))}
    )
    low = 0
    for a, b in pairwise(edges):
        if a < start or b > end:
            continue
        got = sum(f.rate_ul_day * f.conc_ug_ml for f in tip if f.start <= a and f.end >= b)
        wanted = sum(f.rate_ul_day * f.conc_ug_ml for f in programmed if f.start <= a and f.end >= b)
        if got * 100 < wanted * min_pct:
            low += b - a
    return low, sum(f.dose_scaled for f in tip), sum(f.dose_scaled for f in programmed)


def phase_order(ctx: Context[Message]) -> Iterator[str]:
    """PHASE-001: the therapy path in order, and what each phase allows."""
    cmd, state = ctx.command, ctx.before
    phase = state.record.phase
    match cmd:
        case m.SetPatientRecord(phase=new):
            if not phase <= new <= phase + 1:
                yield (
                    "the phase moves forward one step at a time: "
                    f"{phase.name.lower()} cannot become {new.name.lower()}"
                )
            elif new > phase and new is Phase.IMPLANTED and not state.record.screening_dose_ng:
                yield "implanted: no effective screening dose is on record"
            elif new > phase and new is Phase.THERAPY and (state.needs_priming or _saline(state)):
                yield "therapy: the fluid path is not primed"
        case m.BolusStart(kind=kind):
            allowed = {
                BolusKind.CLINICIAN: (Phase.SCREENING, Phase.THERAPY),
                BolusKind.PRIMING: (Phase.IMPLANTED, Phase.THERAPY),
            }.get(kind, (Phase.THERAPY,))
            if phase not in allowed:
                yield f"no {kind.name.lower()} bolus in the {phase.name.lower()} phase"
        case m.RecordScreeningResponse() if phase is not Phase.SCREENING:
            yield f"screening is over: the patient is in the {phase.name.lower()} phase"
        case m.StagePrescription() | m.CommitPrescription() | m.SetRate() if phase is not Phase.THERAPY:
            yield f"no prescription in the {phase.name.lower()} phase: therapy starts once the pump is primed"


def _saline(state: TherapyState) -> bool:
    return any(s.conc_ug_ml == 0 for s in state.path.segments)


def mri_prepared(ctx: Context[m.MriBegin]) -> Iterator[str]:
    """MRI-001: a valve-gated pump emptied before the scan."""
    state = ctx.before
    if state.profile.pump_kind is not PumpKind.VALVE:
        return
    held, emptied = state.reservoir_ul, ctx.command.emptied_ul
    if emptied < held and residual_needs_acknowledgement(ctx.policy, held, emptied):
        yield (
            f"a valve-gated pump is emptied before an MRI: {Volume(emptied)} withdrawn of {Volume(held)} "
            f"(a strong field can discharge what is left)"
        )


def mri_interruption(ctx: Context[m.MriBegin]) -> Iterator[str]:
    """MRI-002 (acknowledge): the scan interrupts delivery."""
    yield f"delivery stops for the MRI until it is resumed after the scan{at_risk(ctx.before)}"

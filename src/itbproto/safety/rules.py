"""The checks behind specs/safety-rules.toml, one function per rule and command family.

Each check yields a human-readable reason for every violation it finds. Numbers
in reasons are shown in display units; comparisons are exact integers (doses
over time are compared scaled by 86 400, see :mod:`itbproto.therapy.flows`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from itbproto.safety.verdict import Check, Context
from itbproto.therapy.flows import SCALE, bolus_dose_ng, bolus_flows, clip, max_window_dose, scaled_to_ng
from itbproto.therapy.schedule import daily_dose_scaled
from itbproto.therapy.state import Battery, TherapyState, apply, planned_flows
from itbproto.units import Dose, DoseRate, FlowRate, Rounding, Volume
from itbproto.wire import messages as m
from itbproto.wire.enums import BolusKind, Origin, PatientGroup, PrescriptionMode, Severity
from itbproto.wire.message import Message

if TYPE_CHECKING:
    from itbproto.safety.policy import SafetyPolicy

__all__ = ["CHECKS", "residual_needs_acknowledgement"]

DAY = SCALE

PRESCRIBING = (m.StagePrescription, m.CommitPrescription, m.SetRate, m.RefillConfirm)
# a timed Suspend resumes delivery by itself when it ends, so it is checked like a Resume
STARTS_DELIVERY = (*PRESCRIBING, m.BolusStart, m.Resume, m.Suspend)
REFILL_DRUG = (m.RefillStageDrug, m.RefillConfirm)
RefillDrug = m.RefillStageDrug | m.RefillConfirm


def _mg_day(scaled: int) -> str:
    return str(DoseRate(scaled_to_ng(scaled, Rounding.UP)))


def _new_prescription(ctx: Context[Message]) -> m.Prescription | None:
    """The prescription the command stages or puts in force, if it changes one."""
    after = ctx.after
    if after is None:
        return None
    if isinstance(ctx.command, m.StagePrescription):
        return after.staged.prescription if after.staged is not None else None
    if after.prescription is not ctx.before.prescription:
        return after.prescription
    return None


def _in_force_after(ctx: Context[Message]) -> TherapyState | None:
    """The state with the command's effect in force (a staged prescription counts as committed)."""
    after = ctx.after
    if after is None:
        return None
    if isinstance(ctx.command, m.StagePrescription) and after.staged is not None:
        return apply(after, after.staged.commit)
    return after


# --- dose ---------------------------------------------------------------------------------------------


def rolling_dose(ctx: Context[Message]) -> Iterator[str]:
    state = _in_force_after(ctx)
    if state is None:
        return
    now = state.now
    limit = _daily_limit_ng(ctx, state)
    flows = clip(ctx.before.delivered, now - DAY, now) + planned_flows(state, now, now + 2 * DAY + 2)
    worst = max_window_dose(flows, DAY, since=now - DAY, until=now + DAY)
    if worst > limit * SCALE:
        yield (
            f"{_mg_day(worst)} would be delivered in 24 h (delivered and planned); "
            f"the limit is {DoseRate(limit)}"
        )


def _daily_limit_ng(ctx: Context[Message], state: TherapyState) -> int:
    if state.prescription is not None:
        return state.prescription.max_daily_dose_ng
    return min(state.drug.ceiling_adult_ng_day, ctx.param("DOSE-003", "adult_ceiling_ng_day"))


def programmed_daily_dose(ctx: Context[Message]) -> Iterator[str]:
    p = _new_prescription(ctx)
    if p is not None and daily_dose_scaled(p) > p.max_daily_dose_ng * SCALE:
        programmed, limit = _mg_day(daily_dose_scaled(p)), DoseRate(p.max_daily_dose_ng)
        yield f"programmed {programmed} exceeds the prescription's {limit}"


def daily_ceiling(ctx: Context[Message]) -> Iterator[str]:
    p = _new_prescription(ctx)
    if p is None:
        return
    child = p.group is PatientGroup.CHILD
    param = ctx.param("DOSE-003", "child_ceiling_ng_day" if child else "adult_ceiling_ng_day")
    ceiling = min(param, ctx.before.drug.ceiling_ng_day(p.group))
    if p.max_daily_dose_ng > ceiling:
        group, asked = p.group.name.lower(), DoseRate(p.max_daily_dose_ng)
        yield f"maximum daily dose {asked} is above the {group} ceiling {DoseRate(ceiling)}"


# --- boluses ------------------------------------------------------------------------------------------


def _bolus_limits(ctx: Context[Message], dose_ng: int, prescription: m.Prescription | None) -> Iterator[str]:
    absolute = ctx.param("BOL-001", "absolute_max_bolus_ng")
    if prescription is not None and dose_ng > prescription.max_bolus_ng:
        yield f"bolus of {Dose(dose_ng)} exceeds the prescription's maximum {Dose(prescription.max_bolus_ng)}"
    if dose_ng > absolute:
        yield f"bolus of {Dose(dose_ng)} exceeds the absolute maximum {Dose(absolute)}"


def bolus_maximum(ctx: Context[m.BolusStart]) -> Iterator[str]:
    yield from _bolus_limits(
        ctx, bolus_dose_ng(ctx.command.volume_ul, ctx.before.concentration_ug_ml), ctx.before.prescription
    )


def periodic_bolus_maximum(ctx: Context[Message]) -> Iterator[str]:
    p = _new_prescription(ctx)
    if p is not None:
        for b in p.boluses:
            yield from _bolus_limits(ctx, bolus_dose_ng(b.volume_ul, p.concentration_ug_ml), p)


def screening_doses(ctx: Context[m.BolusStart]) -> Iterator[str]:
    cmd, state = ctx.command, ctx.before
    if cmd.kind is not BolusKind.CLINICIAN or state.prescription is not None:
        return
    drug = state.drug
    allowed = sorted({drug.child_first_screening_ng, *drug.screening_doses_ng})
    dose = bolus_dose_ng(cmd.volume_ul, state.concentration_ug_ml)
    if dose not in allowed:
        yield f"screening dose {Dose(dose)} is not one of {', '.join(str(Dose(d)) for d in allowed)}"
        return
    previous = [b for b in state.boluses if b.screening]
    step_cap = allowed.index(drug.screening_doses_ng[0])  # the first screening dose
    if previous:
        last = previous[-1]
        interval = max(ctx.param("BOL-002", "interval_s"), drug.screening_interval_s)
        if state.now - last.start < interval:
            yield f"previous screening dose was {state.now - last.start} s ago; wait {interval} s"
        step_cap = allowed.index(last.dose_ng) + 1 if last.dose_ng in allowed else 0
    if allowed.index(dose) > step_cap:
        most = Dose(allowed[min(step_cap, len(allowed) - 1)])
        yield f"screening dose {Dose(dose)} skips a step (at most {most})"


def bolus_rate(ctx: Context[m.BolusStart]) -> Iterator[str]:
    cmd = ctx.command
    yield from _bolus_rate(ctx, cmd.volume_ul, cmd.duration_s)


def periodic_bolus_rate(ctx: Context[Message]) -> Iterator[str]:
    p = _new_prescription(ctx)
    for b in p.boluses if p is not None else ():
        yield from _bolus_rate(ctx, b.volume_ul, b.duration_s)


def _bolus_rate(ctx: Context[Message], volume_ul: int, duration_s: int) -> Iterator[str]:
    rate = bolus_flows(volume_ul, duration_s, 0, 1)[0].rate_ul_day
    limit = ctx.before.profile.max_bolus_rate_ul_day
    if rate > limit:
        yield f"{Volume(volume_ul)} in {duration_s} s is {FlowRate(rate)}, faster than {FlowRate(limit)}"


def one_bolus(ctx: Context[m.BolusStart]) -> Iterator[str]:
    bolus = ctx.before.bolus
    if bolus is not None and bolus.end > ctx.before.now:
        yield f"bolus {bolus.bolus_id} is still being delivered until {bolus.end}"


def patient_lockout(ctx: Context[m.BolusStart]) -> Iterator[str]:
    state = ctx.before
    if not _is_patient_bolus(ctx) or state.prescription is None:
        return
    lockout = state.prescription.patient.lockout_s
    last = [b.start for b in state.boluses if b.kind is BolusKind.PATIENT]
    if last and state.now - last[-1] < lockout:
        yield f"lockout: last patient bolus {state.now - last[-1]} s ago, lockout {lockout} s"


def patient_count(ctx: Context[m.BolusStart]) -> Iterator[str]:
    state = ctx.before
    if not _is_patient_bolus(ctx) or state.prescription is None:
        return
    allowed = state.prescription.patient.max_per_day
    count = sum(1 for b in state.boluses if b.kind is BolusKind.PATIENT and b.start > state.now - DAY)
    if count >= allowed:
        yield f"{count} patient boluses in the last 24 h; {allowed} allowed"


def patient_as_prescribed(ctx: Context[m.BolusStart]) -> Iterator[str]:
    cmd, p = ctx.command, ctx.before.prescription
    if not _is_patient_bolus(ctx):
        return
    if p is None or p.patient.max_per_day == 0:
        yield "patient boluses are not enabled by the prescription"
    elif (cmd.volume_ul, cmd.duration_s) != (p.patient.volume_ul, p.patient.duration_s):
        yield (
            f"patient bolus must be {Volume(p.patient.volume_ul)} over {p.patient.duration_s} s, "
            f"not {Volume(cmd.volume_ul)} over {cmd.duration_s} s"
        )


def _is_patient_bolus(ctx: Context[Message]) -> bool:
    return isinstance(ctx.command, m.BolusStart) and ctx.command.kind is BolusKind.PATIENT


def bridge_bolus(ctx: Context[m.BolusStart]) -> Iterator[str]:
    cmd, state = ctx.command, ctx.before
    if cmd.kind is not BolusKind.BRIDGE:
        return
    changed, window = state.concentration_changed_at, ctx.param("BRIDGE-001", "window_s")
    if changed is None or state.now - changed > window:
        yield f"no concentration change in the last {window} s"
    elif state.bridge_given:
        yield "a bridge bolus was already given after this concentration change"
    yield from _within_internal_volume(state, "bridge", cmd.volume_ul)


def priming_bolus(ctx: Context[m.BolusStart]) -> Iterator[str]:
    cmd, state = ctx.command, ctx.before
    if cmd.kind is not BolusKind.PRIMING:
        return
    if not state.needs_priming:
        yield "no implant or catheter work recorded since the catheter was last primed"
    yield from _within_internal_volume(state, "priming", cmd.volume_ul)


def _within_internal_volume(state: TherapyState, kind: str, volume_ul: int) -> Iterator[str]:
    internal = state.profile.internal_volume_ul
    if volume_ul > internal:
        yield f"{kind} volume {Volume(volume_ul)} exceeds the internal volume {Volume(internal)}"


# --- titration ----------------------------------------------------------------------------------------


def _increase(ctx: Context[Message]) -> tuple[m.Prescription, int, int] | None:
    """(new prescription, its daily dose, the current one) when the command raises the daily dose."""
    p = _new_prescription(ctx)
    if p is None:
        return None
    new, current = daily_dose_scaled(p), ctx.before.daily_dose_at(ctx.before.now)
    if current is None or new <= current:
        return None
    return p, new, current


def titration_step(ctx: Context[Message]) -> Iterator[str]:
    found = _increase(ctx)
    if found is None:
        return
    p, new, _ = found
    state, drug = ctx.before, ctx.before.drug
    in_window = [d for since, d in state.dose_log if since > state.now - DAY]
    at_start = state.daily_dose_at(state.now - DAY)
    reference = min([*in_window, *([at_start] if at_start is not None else [])])
    if p.group is PatientGroup.CHILD:
        pct = min(ctx.param("TITR-001", "child_pct"), drug.titration_child_pct)
    elif p.origin is Origin.CEREBRAL:
        pct = min(ctx.param("TITR-001", "cerebral_pct"), drug.titration_cerebral_pct)
    else:
        pct = min(ctx.param("TITR-001", "spinal_pct"), drug.titration_spinal_pct)
    if new * 100 > reference * (100 + pct):
        yield (
            f"{_mg_day(new)} is more than {pct} % above {_mg_day(reference)}, "
            f"the lowest daily dose in force in the last 24 h"
        )


def one_increase_per_day(ctx: Context[Message]) -> Iterator[str]:
    if _increase(ctx) is None:
        return
    state = ctx.before
    interval = max(ctx.param("TITR-002", "interval_s"), state.drug.titration_interval_s)
    log = state.dose_log
    for (_, before), (since, after) in itertools.pairwise(log):
        if after > before and state.now - since < interval:
            ago = state.now - since
            yield f"the daily dose was already raised {ago} s ago; one increase per {interval} s"


# --- prescription shape ---------------------------------------------------------------------------------


def rate_range(ctx: Context[Message]) -> Iterator[str]:
    p, profile = _new_prescription(ctx), ctx.before.profile
    for i, step in enumerate(p.steps if p is not None else ()):
        if not profile.min_rate_ul_day <= step.rate_ul_day <= profile.max_rate_ul_day:
            yield (
                f"step {i}: {FlowRate(step.rate_ul_day)} is outside "
                f"{FlowRate(profile.min_rate_ul_day)}..{FlowRate(profile.max_rate_ul_day)}"
            )


def rate_resolution(ctx: Context[Message]) -> Iterator[str]:
    p, step_size = _new_prescription(ctx), ctx.before.profile.rate_step_ul_day
    for i, step in enumerate(p.steps if p is not None else ()):
        if step.rate_ul_day % step_size:
            yield f"step {i}: {step.rate_ul_day} µL/day is not a multiple of {step_size} µL/day"


def step_count(ctx: Context[Message]) -> Iterator[str]:
    p, limit = _new_prescription(ctx), ctx.before.profile.max_flex_steps
    if p is None:
        return
    n = len(p.steps)
    if p.mode is PrescriptionMode.CONTINUOUS and n != 1:
        yield f"a continuous prescription has one step, not {n}"
    if p.mode is PrescriptionMode.FLEX and not 2 <= n <= limit:
        yield f"a flex prescription has 2..{limit} steps, not {n}"


def steps_cover_the_day(ctx: Context[Message]) -> Iterator[str]:
    p = _new_prescription(ctx)
    if p is None:
        return
    starts = [s.start_s for s in p.steps]
    if starts[0] != 0:
        yield f"the first step starts at {starts[0]} s, not at midnight"
    if any(b <= a for a, b in itertools.pairwise(starts)):
        yield f"step starts {starts} do not strictly increase"


# --- drug and refill ----------------------------------------------------------------------------------------


def prescription_drug(ctx: Context[Message]) -> Iterator[str]:
    p = _new_prescription(ctx)
    if p is not None:
        yield from _listed(ctx, p.concentration_ug_ml)


def refill_drug(ctx: Context[RefillDrug]) -> Iterator[str]:
    yield from _listed(ctx, ctx.command.concentration_ug_ml)


def _listed(ctx: Context[Message], conc: int) -> Iterator[str]:
    table = ctx.before.drug.concentrations_ug_ml
    if conc not in table:
        yield f"{conc} µg/mL is not in the drug table ({', '.join(map(str, table))} µg/mL)"


def matches_reservoir(ctx: Context[Message]) -> Iterator[str]:
    p = _new_prescription(ctx)
    if p is not None and p.concentration_ug_ml != ctx.before.concentration_ug_ml:
        held = ctx.before.concentration_ug_ml
        yield f"prescription is for {p.concentration_ug_ml} µg/mL; the reservoir holds {held} µg/mL"


def no_overfill(ctx: Context[RefillDrug]) -> Iterator[str]:
    capacity = ctx.before.profile.reservoir_capacity_ul
    if ctx.command.volume_ul > capacity:
        yield f"{Volume(ctx.command.volume_ul)} overfills the {Volume(capacity)} reservoir"


def two_step_refill(ctx: Context[RefillDrug]) -> Iterator[str]:
    refill, cmd = ctx.before.refill, ctx.command
    if refill is None:
        yield "no refill in progress"
    elif refill.measured_ul is None:
        yield "the residual volume has not been recorded"
    elif isinstance(cmd, m.RefillConfirm):
        staged = (refill.staged_volume_ul, refill.staged_conc_ug_ml)
        if staged[0] is None:
            yield "no drug has been staged"
        elif (cmd.volume_ul, cmd.concentration_ug_ml) != staged:
            yield (
                f"confirmation ({Volume(cmd.volume_ul)}, {cmd.concentration_ug_ml} µg/mL) differs from "
                f"what was staged ({Volume(staged[0])}, {staged[1]} µg/mL)"
            )


def residual_discrepancy(ctx: Context[m.RefillConfirm]) -> Iterator[str]:
    refill, cmd = ctx.before.refill, ctx.command
    if refill is None or refill.measured_ul is None or cmd.discrepancy_acknowledged:
        return
    if residual_needs_acknowledgement(ctx.policy, refill.expected_residual_ul, refill.measured_ul):
        yield (
            f"measured residual {Volume(refill.measured_ul)} differs from the expected "
            f"{Volume(refill.expected_residual_ul)}; acknowledge the discrepancy to confirm"
        )


def residual_needs_acknowledgement(policy: SafetyPolicy, expected_ul: int, measured_ul: int) -> bool:
    """REFILL-003's threshold: the larger of the percentage of the expected and the floor."""
    gap = abs(measured_ul - expected_ul)
    pct, floor = policy("REFILL-003", "discrepancy_pct"), policy("REFILL-003", "discrepancy_floor_ul")
    return gap > floor and gap * 100 > expected_ul * pct


# --- reservoir, battery, alarms, clock, session -----------------------------------------------------


def not_from_empty(ctx: Context[Message]) -> Iterator[str]:
    state, cmd = ctx.before, ctx.command
    if state.empty:
        yield "the reservoir is empty"
    elif isinstance(cmd, m.BolusStart) and cmd.volume_ul > state.reservoir_ul:
        yield f"bolus of {Volume(cmd.volume_ul)} is more than the {Volume(state.reservoir_ul)} left"


def end_of_service(ctx: Context[Message]) -> Iterator[str]:
    if ctx.before.battery is Battery.EOS:
        yield "the battery is at end of service: the pump delivers nothing"


def low_reservoir_lead(ctx: Context[m.SetThresholds]) -> Iterator[str]:
    t = ctx.command.thresholds
    min_ul = max(ctx.param("RES-001", "min_low_reservoir_ul"), 0)
    min_days = ctx.param("RES-001", "min_low_reservoir_days")
    if t.low_reservoir_ul < min_ul:
        yield f"low-reservoir alarm at {Volume(t.low_reservoir_ul)} is later than {Volume(min_ul)}"
    if t.low_reservoir_days < min_days:
        yield f"low-reservoir alarm {t.low_reservoir_days} days before empty is later than {min_days} days"


def eri_lead(ctx: Context[m.SetThresholds]) -> Iterator[str]:
    days, minimum = ctx.command.thresholds.eri_lead_days, ctx.param("BATT-002", "min_eri_lead_days")
    if days < minimum:
        yield f"ERI {days} days before end of service is later than {minimum} days"


def reannunciation_period(ctx: Context[m.SetThresholds]) -> Iterator[str]:
    period, limit = ctx.command.thresholds.reannunciate_s, ctx.param("ALARM-001", "max_reannunciate_s")
    if period > limit:
        yield f"critical alarms would repeat every {period} s; at most every {limit} s"


def critical_silence(ctx: Context[m.AlarmSilence]) -> Iterator[str]:
    cmd, state = ctx.command, ctx.before
    alarm = next((a for a in state.alarms if a.alarm_id == cmd.alarm_id), None)
    period = min(state.thresholds.reannunciate_s, ctx.param("ALARM-001", "max_reannunciate_s"))
    if alarm is not None and alarm.severity is Severity.CRITICAL and cmd.duration_s > period:
        yield f"a critical alarm is silenced for at most {period} s, not {cmd.duration_s} s"


def no_silent_stop(ctx: Context[m.SessionEnd]) -> Iterator[str]:
    cmd, state = ctx.command, ctx.before
    if not state.delivering and not cmd.acknowledge_stopped:
        yield "nothing is being delivered: ending the session needs the withdrawal acknowledgement"


def small_clock_step(ctx: Context[m.SetClock]) -> Iterator[str]:
    cmd, state = ctx.command, ctx.before
    step, limit = cmd.device_time - state.now, ctx.param("CLOCK-001", "max_step_s")
    if abs(step) > limit:
        yield f"the clock would move by {step} s; at most {limit} s"
    if cmd.device_time < state.last_event_at:
        yield f"the clock would move back past a recorded event at {state.last_event_at}"


#: every rule check, in the order they run; SafetyPolicy verifies them against the catalog
CHECKS: tuple[Check[Any], ...] = (
    Check("DOSE-001", STARTS_DELIVERY, rolling_dose, consequence=True),
    Check("DOSE-002", PRESCRIBING, programmed_daily_dose, consequence=True),
    Check("DOSE-003", PRESCRIBING, daily_ceiling, consequence=True),
    Check("BOL-001", (m.BolusStart,), bolus_maximum),
    Check("BOL-001", PRESCRIBING, periodic_bolus_maximum, consequence=True),
    Check("BOL-002", (m.BolusStart,), screening_doses),
    Check("BOL-003", (m.BolusStart,), bolus_rate),
    Check("BOL-003", PRESCRIBING, periodic_bolus_rate, consequence=True),
    Check("BOL-004", (m.BolusStart,), one_bolus),
    Check("PBOL-001", (m.BolusStart,), patient_lockout),
    Check("PBOL-002", (m.BolusStart,), patient_count),
    Check("PBOL-003", (m.BolusStart,), patient_as_prescribed),
    Check("BRIDGE-001", (m.BolusStart,), bridge_bolus),
    Check("PRIME-001", (m.BolusStart,), priming_bolus),
    Check("TITR-001", PRESCRIBING, titration_step, consequence=True),
    Check("TITR-002", PRESCRIBING, one_increase_per_day, consequence=True),
    Check("RATE-001", PRESCRIBING, rate_range, consequence=True),
    Check("RATE-002", PRESCRIBING, rate_resolution, consequence=True),
    Check("FLEX-001", PRESCRIBING, step_count, consequence=True),
    Check("FLEX-002", PRESCRIBING, steps_cover_the_day, consequence=True),
    Check("DRUG-001", PRESCRIBING, prescription_drug, consequence=True),
    Check[RefillDrug]("DRUG-001", REFILL_DRUG, refill_drug),
    Check(
        "DRUG-002",
        (m.StagePrescription, m.CommitPrescription, m.SetRate),
        matches_reservoir,
        consequence=True,
    ),
    Check[RefillDrug]("REFILL-001", REFILL_DRUG, no_overfill),
    Check[RefillDrug]("REFILL-002", REFILL_DRUG, two_step_refill),
    Check("REFILL-003", (m.RefillConfirm,), residual_discrepancy),
    Check("RES-002", (m.BolusStart, m.Resume, m.SetRate, m.CommitPrescription), not_from_empty),
    Check("BATT-001", (*PRESCRIBING[:3], m.BolusStart, m.Resume), end_of_service),
    Check("RES-001", (m.SetThresholds,), low_reservoir_lead),
    Check("BATT-002", (m.SetThresholds,), eri_lead),
    Check("ALARM-001", (m.SetThresholds,), reannunciation_period),
    Check("ALARM-001", (m.AlarmSilence,), critical_silence),
    Check("STOP-001", (m.SessionEnd,), no_silent_stop),
    Check("CLOCK-001", (m.SetClock,), small_clock_step),
)

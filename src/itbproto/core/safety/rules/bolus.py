"""Boluses: the most at the tip, screening doses, rate, one at a time, the patient's, bridge, priming."""

from __future__ import annotations

from collections.abc import Iterator

from itbproto.core.safety.rules.common import DAY, child, new_prescription
from itbproto.core.safety.verdict import Context
from itbproto.core.therapy.flows import SCALE, bolus_dose_ng, bolus_flows
from itbproto.core.therapy.schedule import daily_dose_scaled
from itbproto.core.therapy.state import TherapyState
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, Phase, ScreeningResponse
from itbproto.core.wire.message import Message
from itbproto.units import Dose, DoseRate, FlowRate, Rounding, Volume, divide

__all__ = [
    "bolus_maximum",
    "bolus_rate",
    "bridge_bolus",
    "one_bolus",
    "patient_as_prescribed",
    "patient_count",
    "patient_lockout",
    "periodic_bolus_maximum",
    "periodic_bolus_rate",
    "priming_bolus",
    "screening_doses",
    "tip_dose_ng",
]

#: bolus kinds BOL-001 limits (bridge and priming boluses refill the path: their own rules)
LIMITED = (BolusKind.CLINICIAN, BolusKind.PATIENT)


def tip_dose_ng(state: TherapyState, volume_ul: int) -> int:
    """The drug a bolus of ``volume_ul`` pushes out of the catheter tip: the fluid path's next ``volume_ul``
    at its own concentrations, then the reservoir's drug (rounded up)."""
    return divide(state.path.ahead(volume_ul * SCALE, state.concentration_ug_ml), SCALE, Rounding.UP)


def _limits(ctx: Context[Message], dose_ng: int, prescription: m.Prescription | None) -> Iterator[str]:
    absolute = ctx.param("BOL-001", "absolute_max_bolus_ng")
    if prescription is not None and dose_ng > prescription.max_bolus_ng:
        yield f"bolus of {Dose(dose_ng)} exceeds the prescription's maximum {Dose(prescription.max_bolus_ng)}"
    if dose_ng > absolute:
        yield f"bolus of {Dose(dose_ng)} exceeds the absolute maximum {Dose(absolute)}"


def bolus_maximum(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """BOL-001: a clinician or patient bolus, counted at the tip."""
    if ctx.command.kind in LIMITED:
        yield from _limits(ctx, tip_dose_ng(ctx.before, ctx.command.volume_ul), ctx.before.prescription)


def periodic_bolus_maximum(ctx: Context[Message]) -> Iterator[str]:
    """BOL-001: every periodic bolus of a new prescription."""
    p = new_prescription(ctx)
    if p is None:
        return
    for b in p.boluses:
        yield from _limits(ctx, bolus_dose_ng(b.volume_ul, p.concentration_ug_ml), p)


def screening_doses(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """BOL-002: the screening sequence, 24 h apart, each after the last one's response was recorded."""
    cmd, state = ctx.command, ctx.before
    if cmd.kind is not BolusKind.CLINICIAN or state.record.phase is not Phase.SCREENING:
        return
    drug = state.drug
    allowed = sorted({*([drug.child_first_screening_ng] if child(ctx) else []), *drug.screening_doses_ng})
    dose = bolus_dose_ng(cmd.volume_ul, state.concentration_ug_ml)
    if dose not in allowed:
        yield f"screening dose {Dose(dose)} is not one of {', '.join(str(Dose(d)) for d in allowed)}"
        return
    previous = [b for b in state.boluses if b.screening]
    step_cap = allowed.index(drug.screening_doses_ng[0])  # the first screening dose
    if previous:
        last = previous[-1]
        if last.response is ScreeningResponse.PENDING:
            yield f"the response to the screening dose of {Dose(last.dose_ng)} is not recorded yet"
        elif last.response is ScreeningResponse.EFFECTIVE:
            yield f"screening is over: {Dose(last.dose_ng)} was effective"
        elif last.dose_ng >= allowed[-1]:
            yield f"no response to {Dose(last.dose_ng)}: not a candidate for this therapy"
        interval = max(ctx.param("BOL-002", "interval_s"), drug.screening_interval_s)
        if state.now - last.start < interval:
            yield f"the previous screening dose was {state.now - last.start} s ago; wait {interval} s"
        step_cap = allowed.index(last.dose_ng) + 1 if last.dose_ng in allowed else 0
    if allowed.index(dose) > step_cap:
        yield (
            f"screening dose {Dose(dose)} skips a step "
            f"(at most {Dose(allowed[min(step_cap, len(allowed) - 1)])})"
        )


def _rate(ctx: Context[Message], volume_ul: int, duration_s: int) -> Iterator[str]:
    rate = bolus_flows(volume_ul, duration_s, 0, 1)[0].rate_ul_day
    limit = ctx.before.profile.max_bolus_rate_ul_day
    if rate > limit:
        yield f"{Volume(volume_ul)} in {duration_s} s is {FlowRate(rate)}, faster than {FlowRate(limit)}"


def bolus_rate(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """BOL-003: no faster than the profile's bolus rate."""
    yield from _rate(ctx, ctx.command.volume_ul, ctx.command.duration_s)


def periodic_bolus_rate(ctx: Context[Message]) -> Iterator[str]:
    """BOL-003: every periodic bolus of a new prescription."""
    p = new_prescription(ctx)
    for b in p.boluses if p is not None else ():
        yield from _rate(ctx, b.volume_ul, b.duration_s)


def one_bolus(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """BOL-004: one bolus at a time."""
    bolus = ctx.before.bolus
    if bolus is not None and bolus.end > ctx.before.now:
        # (id 0: one the programmer did not see start, or a valve discharge: which, and until when, unknown)
        which = f"bolus {bolus.bolus_id}" if bolus.bolus_id else "a bolus"
        yield f"{which} is still being delivered" + (f" until {bolus.end}" if bolus.bolus_id else "")


def patient_lockout(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """PBOL-001: the lockout since the last patient bolus."""
    state = ctx.before
    if ctx.command.kind is not BolusKind.PATIENT or state.prescription is None:
        return
    lockout = state.prescription.patient.lockout_s
    last = [b.start for b in state.boluses if b.kind is BolusKind.PATIENT]
    if last and state.now - last[-1] < lockout:
        yield f"lockout: last patient bolus {state.now - last[-1]} s ago, lockout {lockout} s"


def patient_count(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """PBOL-002: patient boluses per 24 h."""
    state = ctx.before
    if ctx.command.kind is not BolusKind.PATIENT or state.prescription is None:
        return
    allowed = state.prescription.patient.max_per_day
    count = sum(1 for b in state.boluses if b.kind is BolusKind.PATIENT and b.start > state.now - DAY)
    if count >= allowed:
        yield f"{count} patient boluses in the last 24 h; {allowed} allowed"


def patient_as_prescribed(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """PBOL-003: exactly the prescribed patient bolus."""
    cmd, p = ctx.command, ctx.before.prescription
    if cmd.kind is not BolusKind.PATIENT:
        return
    if p is None or p.patient.max_per_day == 0:
        yield "patient boluses are not enabled by the prescription"
    elif (cmd.volume_ul, cmd.duration_s) != (p.patient.volume_ul, p.patient.duration_s):
        yield (
            f"patient bolus must be {Volume(p.patient.volume_ul)} over {p.patient.duration_s} s, "
            f"not {Volume(cmd.volume_ul)} over {cmd.duration_s} s"
        )


def bridge_bolus(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """BRIDGE-001: once, in the window after a concentration change, the path's volume at the daily dose."""
    cmd, state = ctx.command, ctx.before
    if cmd.kind is not BolusKind.BRIDGE:
        return
    changed, window = state.concentration_changed_at, ctx.param("BRIDGE-001", "window_s")
    if changed is None or state.now - changed > window:
        yield f"no concentration change in the last {window} s"
    elif state.bridge_given:
        yield "a bridge bolus was already given after this concentration change"
    path_ul = state.path.volume_scaled // SCALE
    if cmd.volume_ul > path_ul:
        yield f"bridge volume {Volume(cmd.volume_ul)} exceeds the fluid path's {Volume(path_ul)}"
    p = state.prescription
    if p is None:
        yield "a bridge needs a prescription in force"
        return
    tip = state.path.ahead(cmd.volume_ul * SCALE, state.concentration_ug_ml)  # ng × 86 400
    if tip * DAY > daily_dose_scaled(p) * cmd.duration_s:
        yield (
            f"the bridge would bring {Dose(divide(tip, SCALE, Rounding.UP))} to the tip "
            f"in {cmd.duration_s} s, "
            f"faster than the prescribed {DoseRate(divide(daily_dose_scaled(p), DAY, Rounding.UP))}"
        )


def priming_bolus(ctx: Context[m.BolusStart]) -> Iterator[str]:
    """PRIME-001: after surgery, once, at most the path's volume."""
    cmd, state = ctx.command, ctx.before
    if cmd.kind is not BolusKind.PRIMING:
        return
    if not state.needs_priming:
        yield "no implant or catheter work recorded since the fluid path was last primed"
    saline_ul = state.path.saline_scaled // SCALE
    if cmd.volume_ul > saline_ul:
        yield (
            f"priming volume {Volume(cmd.volume_ul)} is more than the {Volume(saline_ul)} "
            "of saline to push out"
        )

"""What the rule checks share: the command families, the prescription a command puts in force, the
patient category the limits read, and display helpers for reasons."""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.safety.verdict import Context
from itbproto.core.therapy.commands import apply
from itbproto.core.therapy.flows import SCALE, Flow, scaled_to_ng
from itbproto.core.therapy.state import TherapyState, planned_tip_flows
from itbproto.core.therapy.window import flushed_at
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, Origin, PatientGroup, TherapyMode, WithdrawalRisk
from itbproto.core.wire.message import Message
from itbproto.units import DoseRate, Rounding

__all__ = [
    "DAY",
    "PRESCRIBING",
    "REFILL_DRUG",
    "STARTS_DELIVERY",
    "RefillDrug",
    "at_risk",
    "child",
    "flushed_at",
    "in_force_after",
    "mg_day",
    "new_prescription",
    "resuming",
    "schedule_tip_flows",
    "span",
    "strictest_records",
    "titration_pct",
]

DAY = SCALE

PRESCRIBING = (m.StagePrescription, m.CommitPrescription, m.SetRate, m.RefillConfirm)
# a timed Suspend resumes delivery by itself when it ends, so it is checked like a Resume
STARTS_DELIVERY = (*PRESCRIBING, m.BolusStart, m.Resume, m.Suspend)
REFILL_DRUG = (m.RefillStageDrug, m.RefillConfirm)
RefillDrug = m.RefillStageDrug | m.RefillConfirm

_RISKS = {
    WithdrawalRisk.HIGH_SPINAL_INJURY: "spinal cord injury at T6 or above",
    WithdrawalRisk.COMMUNICATION: "communication difficulties",
    WithdrawalRisk.WITHDRAWAL_HISTORY: "a withdrawal before",
}


def mg_day(scaled: int) -> str:
    """A scaled daily dose (ng × 86 400 per day) for a reason, in mg/day, rounded up."""
    return str(DoseRate(scaled_to_ng(scaled, Rounding.UP)))


def span(seconds: int) -> str:
    """A time span for a reason: days, hours and minutes (whole, rounded down)."""
    days, rest = divmod(seconds, DAY)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes)
    return " ".join(parts) or f"{seconds} s"


def new_prescription(ctx: Context[Message]) -> m.Prescription | None:
    """The prescription the command stages or puts in force, if it changes one."""
    after = ctx.after
    if after is None:
        return None
    if isinstance(ctx.command, m.StagePrescription):
        return after.staged.prescription if after.staged is not None else None
    if after.prescription is not ctx.before.prescription:
        return after.prescription
    return None


def in_force_after(ctx: Context[Message]) -> TherapyState | None:
    """The state with the command's effect in force (a staged prescription counts as committed)."""
    after = ctx.after
    if after is None:
        return None
    if isinstance(ctx.command, m.StagePrescription) and after.staged is not None:
        return apply(after, after.staged.commit)
    return after


def resuming(ctx: Context[Message]) -> tuple[TherapyState, int] | None:
    """The state the command leaves in force and when delivery runs in it: now, or the end of a timed
    suspension the command sets (delivery then resumes by itself, so it is checked like a Resume); None when
    nothing will run."""
    after = in_force_after(ctx)
    if after is None:
        return None
    if isinstance(ctx.command, m.Suspend) and after.suspended_until:
        resumed = replace(after, mode=TherapyMode.INFUSING, suspended_until=0)
        return (after, after.suspended_until) if resumed.delivering else None
    return (after, after.now) if after.delivering else None


def schedule_tip_flows(state: TherapyState, end: int) -> tuple[Flow, ...]:
    """What the schedule (basal, periodic boluses, a bridge) delivers at the tip until ``end``; a one-off
    bolus running now left out."""
    bolus = state.bolus
    if bolus is not None and bolus.kind is not BolusKind.BRIDGE:
        state = replace(state, bolus=None)
    return planned_tip_flows(state, end)


def strictest_records(ctx: Context[Message]) -> tuple[m.PatientRecord, ...]:
    """The patient records in force during the last 24 h: the limits take the strictest of them."""
    return ctx.before.records_since(ctx.before.now - DAY)


def child(ctx: Context[Message]) -> bool:
    return any(r.group is PatientGroup.CHILD for r in strictest_records(ctx))


def titration_pct(ctx: Context[Message]) -> int:
    """The titration step of the strictest category in force during the last 24 h."""
    drug = ctx.before.drug
    pcts = []
    for r in strictest_records(ctx):
        if r.group is PatientGroup.CHILD:
            pcts.append(min(ctx.param("TITR-001", "child_pct"), drug.titration_child_pct))
        elif r.origin is Origin.CEREBRAL:
            pcts.append(min(ctx.param("TITR-001", "cerebral_pct"), drug.titration_cerebral_pct))
        else:
            pcts.append(min(ctx.param("TITR-001", "spinal_pct"), drug.titration_spinal_pct))
    return min(pcts)


def at_risk(state: TherapyState) -> str:
    """The record's withdrawal risks, for a reason; empty when there are none."""
    risks = sorted(state.record.risks)
    return f" (withdrawal risk: {', '.join(_RISKS[r] for r in risks)})" if risks else ""

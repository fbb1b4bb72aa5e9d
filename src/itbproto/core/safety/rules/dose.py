"""How much drug, and how fast it may change: daily limits, titration, decreases, restarts, the first dose.

Doses over time are compared exactly, scaled by 86 400, at the catheter tip.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from itbproto.core.safety.rules.common import (
    DAY,
    at_risk,
    child,
    flushed_at,
    in_force_after,
    mg_day,
    new_prescription,
    resuming,
    schedule_tip_flows,
    span,
    titration_pct,
)
from itbproto.core.safety.verdict import Context
from itbproto.core.therapy.flows import max_window_dose
from itbproto.core.therapy.schedule import daily_dose_scaled, peak_ng_day
from itbproto.core.therapy.state import TherapyState
from itbproto.core.therapy.window import worst_window_scaled
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import PatientGroup
from itbproto.core.wire.message import Message
from itbproto.units import Dose, DoseRate

__all__ = [
    "daily_ceiling",
    "first_daily_dose",
    "large_decrease",
    "large_step_at_high_dose",
    "one_increase_per_day",
    "peak_rate",
    "programmed_daily_dose",
    "restart_after_interruption",
    "rolling_dose",
    "titration_step",
]


def rolling_dose(ctx: Context[Message]) -> Iterator[str]:
    """DOSE-001: no 24 h window, delivered and planned, at the tip, above the maximum daily dose."""
    state = in_force_after(ctx)
    if state is None:
        return
    limit = _daily_limit_ng(ctx, state)
    worst = worst_window_scaled(state)
    if worst > limit * DAY:
        yield (
            f"{mg_day(worst)} would reach the catheter tip in 24 h (delivered and planned); "
            f"the limit is {DoseRate(limit)}"
        )


def _daily_limit_ng(ctx: Context[Message], state: TherapyState) -> int:
    """The prescription's maximum; with none in force, the ceiling of the record's (strictest) group."""
    if state.prescription is not None:
        return state.prescription.max_daily_dose_ng
    return _ceiling(ctx)[1]


def _ceiling(ctx: Context[Message]) -> tuple[bool, int]:
    """(a child?, DOSE-003's ceiling) by the strictest record of the last 24 h or the command's."""
    after = ctx.after
    young = child(ctx) or (after is not None and after.record.group is PatientGroup.CHILD)
    param = ctx.param("DOSE-003", "child_ceiling_ng_day" if young else "adult_ceiling_ng_day")
    drug = ctx.before.drug
    return young, min(param, drug.ceiling_child_ng_day if young else drug.ceiling_adult_ng_day)


def programmed_daily_dose(ctx: Context[Message]) -> Iterator[str]:
    """DOSE-002: a prescription's own daily dose within its own maximum."""
    p = new_prescription(ctx)
    if p is not None and daily_dose_scaled(p) > p.max_daily_dose_ng * DAY:
        yield (
            f"programmed {mg_day(daily_dose_scaled(p))} exceeds the prescription's "
            f"{DoseRate(p.max_daily_dose_ng)}"
        )


def daily_ceiling(ctx: Context[Message]) -> Iterator[str]:
    """DOSE-003: the maximum daily dose within the ceiling of the record's (strictest) group; a new
    prescription's, or the one in force when the record changes."""
    p = new_prescription(ctx)
    if p is None and isinstance(ctx.command, m.SetPatientRecord) and ctx.after is not None:
        p = ctx.after.prescription
    if p is None:
        return
    young, ceiling = _ceiling(ctx)
    if p.max_daily_dose_ng > ceiling:
        yield (
            f"maximum daily dose {DoseRate(p.max_daily_dose_ng)} is above the "
            f"{'child' if young else 'adult'} ceiling {DoseRate(ceiling)}"
        )


def _new_daily(ctx: Context[Message], p: m.Prescription) -> int:
    """The new daily dose as the titration rules count it: the programmed one, or more if the fluid path
    brings more to the tip in some 24 h ahead (a concentration change without a bridge)."""
    state = in_force_after(ctx)
    assert state is not None  # a new prescription comes with the state it makes
    now = state.now
    ahead = max(now + DAY, flushed_at(state))
    tip = max_window_dose(schedule_tip_flows(state, ahead + DAY + 2), DAY, since=now, until=ahead)
    return max(daily_dose_scaled(p), tip)


def _increase(ctx: Context[Message]) -> tuple[m.Prescription, int, int] | None:
    """(new prescription, its daily dose, the dose in force) when the command raises the daily dose."""
    p = new_prescription(ctx)
    if p is None:
        return None
    current = ctx.before.daily_dose_at(ctx.before.now)
    if current is None:
        return None
    new = _new_daily(ctx, p)
    return (p, new, current) if new > current else None


def titration_step(ctx: Context[Message]) -> Iterator[str]:
    """TITR-001: at most the category's percentage above the lowest daily dose of the last 24 h."""
    found = _increase(ctx)
    if found is None:
        return
    _, new, _ = found
    state = ctx.before
    in_window = [e.daily_scaled for e in state.dose_log if e.since > state.now - DAY]
    at_start = state.daily_dose_at(state.now - DAY)
    reference = min([*in_window, *([at_start] if at_start is not None else [])])
    pct = titration_pct(ctx)
    if new * 100 > reference * (100 + pct):
        yield (
            f"{mg_day(new)} is more than {pct} % above {mg_day(reference)}, "
            f"the lowest daily dose in force in the last 24 h"
        )


def one_increase_per_day(ctx: Context[Message]) -> Iterator[str]:
    """TITR-002: one raise of the programmed daily dose per interval."""
    if _increase(ctx) is None:
        return
    state = ctx.before
    interval = max(ctx.param("TITR-002", "interval_s"), state.drug.titration_interval_s)
    for before, after in itertools.pairwise(state.dose_log):
        ago = state.now - after.since
        if after.daily_scaled > before.daily_scaled and ago < interval:
            yield f"the daily dose was already raised {span(ago)} ago; one increase per {span(interval)}"


def large_step_at_high_dose(ctx: Context[Message]) -> Iterator[str]:
    """TITR-003 (acknowledge): above the maintenance range, a step over the percentage."""
    found = _increase(ctx)
    if found is None:
        return
    _, new, current = found
    drug = ctx.before.drug
    upper = (drug.maintenance_child_ng_day if child(ctx) else drug.maintenance_adult_ng_day)[-1]
    pct = ctx.param("TITR-003", "pct")
    if new > upper * DAY and new * 100 > current * (100 + pct):
        yield (
            f"{mg_day(new)} is above the usual maintenance range (up to {DoseRate(upper)}) and more than "
            f"{pct} % above {mg_day(current)}: an increase that large may be excessive at this dose"
        )


def large_decrease(ctx: Context[Message]) -> Iterator[str]:
    """DECR-001 (acknowledge): a new daily dose far below the one in force."""
    p = new_prescription(ctx)
    current = ctx.before.daily_dose_at(ctx.before.now)
    if p is None or current is None:
        return
    new, pct = daily_dose_scaled(p), ctx.param("DECR-001", "max_decrease_pct")
    if new * 100 < current * (100 - pct):
        yield (
            f"{mg_day(new)} is more than {pct} % below {mg_day(current)}: a sudden drop risks "
            f"withdrawal{at_risk(ctx.before)}"
        )


def peak_rate(ctx: Context[Message]) -> Iterator[str]:
    """FLEX-003: the peak basal dose rate rises at most the percentage above the lowest peak of 24 h."""
    p = new_prescription(ctx)
    state = ctx.before
    current = state.dose_entry_at(state.now)
    if p is None or current is None:
        return
    new = peak_ng_day(p)
    if new <= current.peak_ng_day:
        return
    at_start = state.dose_entry_at(state.now - DAY)
    peaks = [e.peak_ng_day for e in state.dose_log if e.since > state.now - DAY]
    reference = min([*peaks, *([at_start.peak_ng_day] if at_start is not None else [])])
    pct = ctx.param("FLEX-003", "peak_pct")
    if new * 100 > reference * (100 + pct):
        yield (
            f"the highest rate would be {DoseRate(new)}, more than {pct} % above {DoseRate(reference)}, "
            f"the lowest peak in force in the last 24 h"
        )


def restart_after_interruption(ctx: Context[Message]) -> Iterator[str]:
    """RESTART-001 (acknowledge): restarting at near the old dose after a long time without drug."""
    before, found = ctx.before, resuming(ctx)
    if found is None:
        return
    after, at = found
    if after.prescription is None or (before.delivering and at == before.now):
        return
    gap, limit = at - before.last_delivery_at, ctx.param("RESTART-001", "max_gap_s")
    old = before.daily_dose_at(before.last_delivery_at)
    if gap <= limit or old is None:
        return
    new, pct = daily_dose_scaled(after.prescription), ctx.param("RESTART-001", "ramp_pct")
    if new * 100 > old * pct:
        yield (
            f"no drug has reached the tip for {span(gap)}: restarting at {mg_day(new)} (more than {pct} % "
            f"of {mg_day(old)}) after that long may be too much, as tolerance may be lost; restart lower"
        )


def first_daily_dose(ctx: Context[Message]) -> Iterator[str]:
    """SCREEN-001: the first prescription of therapy within the screening dose's multiple."""
    p = new_prescription(ctx)
    state = ctx.before
    if p is None or state.prescription is not None or state.dose_log:
        return
    record = state.record
    screening = record.screening_dose_ng
    if not screening:
        yield "no effective screening dose is on record"
        return
    long_effect = record.screening_effect_s >= ctx.param("SCREEN-001", "long_effect_s")
    factor = 100 if long_effect else ctx.param("SCREEN-001", "factor_pct")
    allowed = screening * factor // 100
    if daily_dose_scaled(p) > allowed * DAY:
        yield (
            f"the first daily dose {mg_day(daily_dose_scaled(p))} is more than {DoseRate(allowed)}: the "
            f"effective screening dose was {Dose(screening)} "
            f"({'its effect lasted 8 h or more' if long_effect else f'{factor} % of it'})"
        )

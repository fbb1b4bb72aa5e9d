"""The reservoir: refills confirmed in two steps, no overfill, discrepancies, stability, never from empty."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from itbproto.core.safety.rules.common import DAY, RefillDrug, resuming
from itbproto.core.safety.verdict import Context
from itbproto.core.therapy.schedule import daily_volume_scaled
from itbproto.core.wire import messages as m
from itbproto.core.wire.message import Message
from itbproto.units import Volume

if TYPE_CHECKING:
    from itbproto.core.safety.policy import SafetyPolicy

__all__ = [
    "expired_drug",
    "no_overfill",
    "not_from_empty",
    "residual_discrepancy",
    "residual_needs_acknowledgement",
    "stability",
    "two_step_refill",
]


def residual_needs_acknowledgement(policy: SafetyPolicy, expected_ul: int, measured_ul: int) -> bool:
    """REFILL-003's threshold: the larger of the percentage of the expected and the floor."""
    gap = abs(measured_ul - expected_ul)
    pct, floor = policy("REFILL-003", "discrepancy_pct"), policy("REFILL-003", "discrepancy_floor_ul")
    return gap > floor and gap * 100 > expected_ul * pct


def no_overfill(ctx: Context[RefillDrug]) -> Iterator[str]:
    """REFILL-001: what goes in, plus what may still be in, fits the reservoir."""
    refill, volume = ctx.before.refill, ctx.command.volume_ul
    capacity = ctx.before.profile.reservoir_capacity_ul
    left = 0
    if refill is not None and refill.measured_ul is not None:
        left = max(0, refill.expected_residual_ul - refill.measured_ul)
    if volume + left > capacity:
        yield (
            f"{Volume(volume)} overfills the {Volume(capacity)} reservoir"
            f"{f' with {Volume(left)} that may still be in it (less was withdrawn)' if left else ''}"
        )


def two_step_refill(ctx: Context[RefillDrug]) -> Iterator[str]:
    """REFILL-002: residual recorded, drug staged, the confirmation repeats it."""
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
    """REFILL-003 (acknowledge): the residual measured far from the expected."""
    refill = ctx.before.refill
    if refill is None or refill.measured_ul is None:
        return
    if residual_needs_acknowledgement(ctx.policy, refill.expected_residual_ul, refill.measured_ul):
        yield (
            f"measured residual {Volume(refill.measured_ul)} differs from the expected "
            f"{Volume(refill.expected_residual_ul)}: a pocket fill, a leak or a wrong prescription?"
        )


def stability(ctx: Context[m.RefillConfirm]) -> Iterator[str]:
    """REFILL-004 (acknowledge): the refill lasts beyond the drug's stability."""
    after = ctx.after
    if after is None or after.prescription is None:
        return
    days = after.drug.stability_days
    per_day = daily_volume_scaled(after.prescription)  # µL × 86 400 a day
    if ctx.command.volume_ul * DAY > days * per_day:
        yield (
            f"{Volume(ctx.command.volume_ul)} lasts {ctx.command.volume_ul * DAY // per_day} days; "
            f"the drug is stable {days} days: refill sooner"
        )


def expired_drug(ctx: Context[Message]) -> Iterator[str]:
    """RES-003 (acknowledge): delivery started or changed from drug past its stability date."""
    found = resuming(ctx)
    if found is None:
        return
    after, at = found
    if at >= after.stability_ends_at:
        yield (
            "the drug in the reservoir passed its stability date "
            f"{(at - after.stability_ends_at) // DAY} days before delivery runs"
        )


def not_from_empty(ctx: Context[Message]) -> Iterator[str]:
    """RES-002: no delivery from an empty reservoir; no bolus larger than what is left."""
    state, cmd = ctx.before, ctx.command
    if state.empty:
        yield "the reservoir is empty"
    elif isinstance(cmd, m.BolusStart) and cmd.volume_ul > state.reservoir_ul:
        yield f"bolus of {Volume(cmd.volume_ul)} is more than the {Volume(state.reservoir_ul)} left"

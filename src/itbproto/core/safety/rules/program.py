"""The shape of a prescription: rates within range and resolution, steps that cover the day, the drug."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from itbproto.core.safety.rules.common import RefillDrug, new_prescription
from itbproto.core.safety.verdict import Context
from itbproto.core.wire.enums import PrescriptionMode
from itbproto.core.wire.message import Message
from itbproto.units import FlowRate

__all__ = [
    "matches_reservoir",
    "prescription_drug",
    "rate_range",
    "rate_resolution",
    "refill_drug",
    "step_count",
    "steps_cover_the_day",
]


def rate_range(ctx: Context[Message]) -> Iterator[str]:
    """RATE-001: every step within the profile's range."""
    p, profile = new_prescription(ctx), ctx.before.profile
    for i, step in enumerate(p.steps if p is not None else ()):
        if not profile.min_rate_ul_day <= step.rate_ul_day <= profile.max_rate_ul_day:
            yield (
                f"step {i}: {FlowRate(step.rate_ul_day)} is outside "
                f"{FlowRate(profile.min_rate_ul_day)}..{FlowRate(profile.max_rate_ul_day)}"
            )


def rate_resolution(ctx: Context[Message]) -> Iterator[str]:
    """RATE-002: every step a multiple of the profile's rate step."""
    p, step_size = new_prescription(ctx), ctx.before.profile.rate_step_ul_day
    for i, step in enumerate(p.steps if p is not None else ()):
        if step.rate_ul_day % step_size:
            yield f"step {i}: {step.rate_ul_day} µL/day is not a multiple of {step_size} µL/day"


def step_count(ctx: Context[Message]) -> Iterator[str]:
    """FLEX-001: one step continuous, 2 to the profile's maximum flex."""
    p, limit = new_prescription(ctx), ctx.before.profile.max_flex_steps
    if p is None:
        return
    n = len(p.steps)
    if p.mode is PrescriptionMode.CONTINUOUS and n != 1:
        yield f"a continuous prescription has one step, not {n}"
    if p.mode is PrescriptionMode.FLEX and not 2 <= n <= limit:
        yield f"a flex prescription has 2..{limit} steps, not {n}"


def steps_cover_the_day(ctx: Context[Message]) -> Iterator[str]:
    """FLEX-002: from midnight, strictly increasing."""
    p = new_prescription(ctx)
    if p is None:
        return
    starts = [s.start_s for s in p.steps]
    if starts[0] != 0:
        yield f"the first step starts at {starts[0]} s, not at midnight"
    if any(b <= a for a, b in itertools.pairwise(starts)):
        yield f"step starts {starts} do not strictly increase"


def prescription_drug(ctx: Context[Message]) -> Iterator[str]:
    """DRUG-001: a prescription's concentration is in the drug table."""
    p = new_prescription(ctx)
    if p is not None:
        yield from _listed(ctx, p.concentration_ug_ml)


def refill_drug(ctx: Context[RefillDrug]) -> Iterator[str]:
    """DRUG-001: a refill's concentration is in the drug table."""
    yield from _listed(ctx, ctx.command.concentration_ug_ml)


def _listed(ctx: Context[Message], conc: int) -> Iterator[str]:
    table = ctx.before.drug.concentrations_ug_ml
    if conc not in table:
        yield f"{conc} µg/mL is not in the drug table ({', '.join(map(str, table))} µg/mL)"


def matches_reservoir(ctx: Context[Message]) -> Iterator[str]:
    """DRUG-002: a prescription's concentration is the reservoir's."""
    p = new_prescription(ctx)
    if p is not None and p.concentration_ug_ml != ctx.before.concentration_ug_ml:
        held = ctx.before.concentration_ug_ml
        yield f"prescription is for {p.concentration_ug_ml} µg/mL; the reservoir holds {held} µg/mL"

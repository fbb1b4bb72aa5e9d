"""Rates and schedules: RATE-*, FLEX-*."""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    PrescriptionMode,
)
from itbproto.qa.bench import DAY, Bench
from itbproto.qa.probes.common import (
    flex,
    rx,
    start,
)
from itbproto.qa.probes.registry import Hands, probe

# --- rates and schedules ------------------------------------------------------------------------------------


@probe("RATE-001", "RATE-002")
async def rate_range(b: Bench, hands: Hands) -> None:
    """Every basal rate within the profile's range: a step under the minimum, and 0 (an 'off' step: hours
    without drug, a catheter that may block), by rate and in a flex step; the minimum itself."""
    t = await start(b)
    low, step = b.info.min_rate_ul_day, b.info.rate_step_ul_day
    off = flex(t, [0, 2 * t.rate])
    await b.over("RATE-001", b.program(rx(t, 0, b, steps=off)), "a flex step at 0 uL/day")
    await b.over("RATE-001", b.command(m.SetRate(rate_ul_day=0, ack=m.NO_ACK)), "0 uL/day", ack=("DECR-001",))
    if low > step:
        await b.over(
            "RATE-001",
            b.command(m.SetRate(rate_ul_day=low - step, ack=m.NO_ACK)),
            "a step under the minimum rate",
            ack=("DECR-001",),
        )
    await b.ok(
        "RATE-001", b.command(m.SetRate(rate_ul_day=low, ack=m.NO_ACK)), "the minimum rate", ack=("DECR-001",)
    )
    s = await b.status()
    b.expect("RATE-001", s.rate_ul_day == low, f"status rate {s.rate_ul_day} after {low}")
    if step == 1:
        b.tally.unreachable["RATE-002"] = (
            "the profile's rate step is 1 uL/day: every rate is a whole multiple"
        )
        return
    await b.over("RATE-002", b.command(m.SetRate(rate_ul_day=low + 1, ack=m.NO_ACK)), "a rate between steps")
    await b.ok("RATE-002", b.command(m.SetRate(rate_ul_day=low + step, ack=m.NO_ACK)), "a rate a step up")


@probe("FLEX-001", "FLEX-002")
async def flex_steps(b: Bench, hands: Hands) -> None:
    t = await start(b)
    most = b.info.max_flex_steps
    two = flex(t, [t.rate, t.rate])
    await b.over(
        "FLEX-001", b.program(replace(rx(t, t.rate, b), steps=two)), "a continuous prescription, two steps"
    )
    one = (m.FlexStep(start_s=0, rate_ul_day=t.rate),)
    await b.over(
        "FLEX-001",
        b.program(replace(rx(t, t.rate, b), mode=PrescriptionMode.FLEX, steps=one)),
        "a flex prescription, one step",
    )
    if most + 1 <= m.MAX_FLEX_STEPS:
        await b.over(
            "FLEX-001", b.program(rx(t, 0, b, steps=flex(t, [t.rate] * (most + 1)))), f"{most + 1} steps"
        )
    await b.ok("FLEX-001", b.program(rx(t, 0, b, steps=flex(t, [t.rate] * most))), f"{most} steps")
    late = (m.FlexStep(start_s=1, rate_ul_day=t.rate), m.FlexStep(start_s=DAY // 2, rate_ul_day=t.rate))
    await b.over("FLEX-002", b.program(rx(t, 0, b, steps=late)), "the first step at 00:00:01")
    same = (
        m.FlexStep(start_s=0, rate_ul_day=t.rate),
        m.FlexStep(start_s=DAY // 2, rate_ul_day=t.rate),
        m.FlexStep(start_s=DAY // 2, rate_ul_day=t.rate),
    )
    await b.over("FLEX-002", b.program(rx(t, 0, b, steps=same)), "two steps starting at once")
    await b.ok(
        "FLEX-002", b.program(rx(t, 0, b, steps=flex(t, [t.rate, t.rate]))), "two steps at 00:00 and 12:00"
    )


@probe("FLEX-003")
async def flex_peak(b: Bench, hands: Hands) -> None:
    """A schedule reshaped at the same daily dose: its peak step against the lowest peak of 24 h."""
    t = await start(b)
    pct, step = b.param("FLEX-003", "peak_pct"), b.info.rate_step_ul_day
    peak = t.rate_for(t.daily * (100 + pct) // 100)
    over = flex(t, [2 * t.rate - peak - step, peak + step])  # the peak need not be the first step
    await b.over("FLEX-003", b.program(rx(t, 0, b, steps=over)), f"a peak {pct} % + a step over")
    await b.ok(
        "FLEX-003", b.program(rx(t, 0, b, steps=flex(t, [2 * t.rate - peak, peak]))), f"a peak {pct} % over"
    )
    higher = t.rate_for(peak * t.conc * (100 + pct) // 100)  # within the step of the peak now, not the lowest
    ratchet = flex(t, [2 * t.rate - higher, higher])
    await b.over("FLEX-003", b.program(rx(t, 0, b, steps=ratchet)), f"again {pct} % up within 24 h")

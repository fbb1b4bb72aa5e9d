"""Exact dose math over delivery flows, in integers.

A :class:`Flow` is drug delivered at a constant integer rate (µL/day) between two
integer device times (s). Volume over an interval is ``rate × seconds / 86 400``
µL, which is generally not a whole number; so amounts here are kept **scaled by
86 400**: a *scaled volume* is µL × 86 400 and a *scaled dose* is ng × 86 400.
Every sum, comparison and maximum below is then exact integer arithmetic, and a
rounding happens only when a caller converts to ng or µL, in the direction it
asks for.

A bolus of V µL over D s becomes flows at the integer rate ``⌊V·86 400 / D⌋``
µL/day plus, if needed, one final second carrying the remainder, so that the
delivered volume is exactly V (its duration may exceed D by a few seconds).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from itbproto.units import SECONDS_PER_DAY, Rounding, divide

__all__ = [
    "SCALE",
    "Flow",
    "bolus_dose_ng",
    "bolus_flows",
    "clip",
    "dose_between",
    "joined",
    "max_window_dose",
    "scaled_to_ng",
    "seconds_until_volume",
    "volume_between",
]

SCALE = SECONDS_PER_DAY


@dataclass(frozen=True, slots=True, order=True)
class Flow:
    """Drug at ``conc_ug_ml`` delivered at ``rate_ul_day`` from ``start`` to ``end`` (device s)."""

    start: int
    end: int
    rate_ul_day: int
    conc_ug_ml: int

    def __post_init__(self) -> None:
        if self.end < self.start or self.rate_ul_day < 0 or self.conc_ug_ml < 0:
            raise ValueError(f"invalid flow {self!r}")

    @property
    def volume_scaled(self) -> int:
        return self.rate_ul_day * (self.end - self.start)

    @property
    def dose_scaled(self) -> int:
        return self.volume_scaled * self.conc_ug_ml

    def overlap(self, start: int, end: int) -> int:
        """Seconds of this flow inside [start, end)."""
        return max(0, min(self.end, end) - max(self.start, start))


def bolus_dose_ng(volume_ul: int, conc_ug_ml: int) -> int:
    """The drug in a bolus (or any volume): µL × µg/mL = ng, exactly."""
    return volume_ul * conc_ug_ml


def joined(flows: Iterable[Flow]) -> tuple[Flow, ...]:
    """Flows in the order given, each one that continues the previous one at the same rate and concentration
    joined to it."""
    out: list[Flow] = []
    for f in flows:
        last = out[-1] if out else None
        if last is not None and (last.end, last.rate_ul_day, last.conc_ug_ml) == (
            f.start,
            f.rate_ul_day,
            f.conc_ug_ml,
        ):
            out[-1] = Flow(last.start, f.end, f.rate_ul_day, f.conc_ug_ml)
        else:
            out.append(f)
    return tuple(out)


def bolus_flows(volume_ul: int, duration_s: int, start: int, conc_ug_ml: int) -> tuple[Flow, ...]:
    """Flows that deliver exactly ``volume_ul`` starting at ``start``, no faster than V over D."""
    if volume_ul <= 0 or duration_s <= 0:
        raise ValueError("a bolus needs a positive volume and duration")
    total = volume_ul * SCALE
    rate = max(1, total // duration_s)
    seconds, remainder = divmod(total, rate)
    flows = [Flow(start, start + seconds, rate, conc_ug_ml)]
    if remainder:
        flows.append(Flow(start + seconds, start + seconds + 1, remainder, conc_ug_ml))
    return tuple(flows)


def clip(flows: Iterable[Flow], start: int, end: int) -> tuple[Flow, ...]:
    """The parts of ``flows`` inside [start, end)."""
    out = []
    for f in flows:
        a, b = max(f.start, start), min(f.end, end)
        if a < b:
            out.append(Flow(a, b, f.rate_ul_day, f.conc_ug_ml))
    return tuple(out)


def volume_between(flows: Iterable[Flow], start: int, end: int) -> int:
    """Scaled volume (µL × 86 400) delivered in [start, end)."""
    return sum(f.rate_ul_day * f.overlap(start, end) for f in flows)


def dose_between(flows: Iterable[Flow], start: int, end: int) -> int:
    """Scaled dose (ng × 86 400) delivered in [start, end)."""
    return sum(f.rate_ul_day * f.conc_ug_ml * f.overlap(start, end) for f in flows)


def scaled_to_ng(scaled: int, rounding: Rounding) -> int:
    """A scaled dose (ng × 86 400) in whole ng, rounded as stated (also µL from a scaled volume)."""
    return divide(scaled, SCALE, rounding)


def _dose_rate_steps(flows: Sequence[Flow]) -> tuple[list[int], list[int]]:
    """Breakpoints ``t[k]`` and the total dose rate (ng/day) on [t[k], t[k+1])."""
    delta: dict[int, int] = {}
    for f in flows:
        if f.end > f.start and f.rate_ul_day:
            r = f.rate_ul_day * f.conc_ug_ml
            delta[f.start] = delta.get(f.start, 0) + r
            delta[f.end] = delta.get(f.end, 0) - r
    times = sorted(delta)
    rates, level = [], 0
    for t in times:
        level += delta[t]
        rates.append(level)
    return times, rates


def max_window_dose(
    flows: Sequence[Flow],
    window: int = SECONDS_PER_DAY,
    since: int | None = None,
    until: int | None = None,
) -> int:
    """The largest scaled dose in any window [t, t + window) with ``since <= t <= until``.

    Exact. The dose in a sliding window is piecewise linear in its start t, with
    kinks only where t or t + window meets a breakpoint of the flows; so the
    maximum is at one of those starts (or an end of the range). After sorting
    the breakpoints, one sweep with two pointers evaluates them all: O(n).
    """
    times, rates = _dose_rate_steps(flows)
    if not times:
        return 0
    lo = times[0] - window if since is None else since
    hi = times[-1] if until is None else until
    if hi < lo:
        return 0
    kinks = {t for t in times if lo <= t <= hi} | {t - window for t in times if lo <= t - window <= hi}
    starts = sorted(kinks | {lo, hi})

    current = dose_between(flows, starts[0], starts[0] + window)
    best = current
    tail = bisect.bisect_right(times, starts[0]) - 1  # index of the step holding the window start
    head = bisect.bisect_right(times, starts[0] + window) - 1  # ... and the window end
    for here, there in itertools.pairwise(starts):
        slope = (rates[head] if head >= 0 else 0) - (rates[tail] if tail >= 0 else 0)
        current += slope * (there - here)
        while tail + 1 < len(times) and times[tail + 1] <= there:
            tail += 1
        while head + 1 < len(times) and times[head + 1] <= there + window:
            head += 1
        best = max(best, current)
    return best


def seconds_until_volume(flows: tuple[Flow, ...], start: int, volume_scaled: int) -> int | None:
    """Seconds from ``start`` until ``flows`` have delivered ``volume_scaled``, rounded down.

    None when they never do. Used to forecast the empty-reservoir and low-reservoir times.
    """
    if volume_scaled <= 0:
        return 0
    changes: dict[int, int] = {}  # the total rate changes by this much at this time
    for f in flows:
        if f.end > start:
            changes[max(f.start, start)] = changes.get(max(f.start, start), 0) + f.rate_ul_day
            changes[f.end] = changes.get(f.end, 0) - f.rate_ul_day
    remaining, rate, at = volume_scaled, 0, start
    for t in sorted(changes):
        if rate and rate * (t - at) >= remaining:
            return at - start + remaining // rate
        remaining -= rate * (t - at)
        rate, at = rate + changes[t], t
    return None

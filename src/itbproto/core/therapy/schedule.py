"""A prescription as delivery flows, its daily dose, and forecasts (days to empty, alarm dates).

The pump's day starts at device time 0 and every multiple of 86 400 s (device
midnight); a flex step or periodic bolus at ``start_s`` happens at that offset
each day.
"""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.therapy.flows import SCALE, Flow, bolus_flows, clip
from itbproto.core.wire.messages import FlexStep, Prescription
from itbproto.units import Rounding, divide

__all__ = [
    "basal_flows",
    "daily_dose_scaled",
    "daily_volume_scaled",
    "peak_ng_day",
    "periodic_bolus_flows",
    "prescription_flows",
    "rescale",
]


def _day_starts(start: int, end: int) -> range:
    first = start - start % SCALE
    return range(first - SCALE, end + SCALE, SCALE)


def basal_flows(p: Prescription, start: int, end: int) -> tuple[Flow, ...]:
    """The basal steps of ``p`` over [start, end)."""
    flows = []
    bounds = [s.start_s for s in p.steps[1:]] + [SCALE]
    for day in _day_starts(start, end):
        for step, until in zip(p.steps, bounds, strict=True):
            if until > step.start_s:  # out-of-order steps cover nothing (FLEX-002 refuses them)
                flows.append(Flow(day + step.start_s, day + until, step.rate_ul_day, p.concentration_ug_ml))
    return clip(flows, start, end)


def periodic_bolus_flows(p: Prescription, start: int, end: int) -> tuple[Flow, ...]:
    """The periodic boluses of ``p`` that deliver anything in [start, end), clipped to it."""
    flows: list[Flow] = []
    for day in _day_starts(start, end):
        for b in p.boluses:
            flows += bolus_flows(b.volume_ul, b.duration_s, day + b.start_s, p.concentration_ug_ml)
    return clip(flows, start, end)


def prescription_flows(p: Prescription, start: int, end: int) -> tuple[Flow, ...]:
    """Everything ``p`` delivers over [start, end): basal steps and periodic boluses."""
    return basal_flows(p, start, end) + periodic_bolus_flows(p, start, end)


def daily_volume_scaled(p: Prescription) -> int:
    """Scaled volume (µL × 86 400) ``p`` delivers per day."""
    bounds = [s.start_s for s in p.steps[1:]] + [SCALE]
    basal = sum(s.rate_ul_day * max(0, until - s.start_s) for s, until in zip(p.steps, bounds, strict=True))
    return basal + sum(b.volume_ul * SCALE for b in p.boluses)


def daily_dose_scaled(p: Prescription) -> int:
    """Scaled dose (ng × 86 400) ``p`` delivers per day: basal plus periodic boluses, exactly."""
    return daily_volume_scaled(p) * p.concentration_ug_ml


def peak_ng_day(p: Prescription) -> int:
    """The highest basal dose rate of ``p`` (ng/day): its highest step."""
    return max(s.rate_ul_day for s in p.steps) * p.concentration_ug_ml


def rescale(p: Prescription, concentration_ug_ml: int, step_ul_day: int) -> Prescription:
    """``p`` for a new concentration at the same or a lower daily dose (rates rounded down to the step).

    Periodic bolus volumes are rescaled the same way, rounded down to whole µL; one that
    rounds to nothing is dropped.
    """

    def rate(r: int) -> int:
        exact = divide(r * p.concentration_ug_ml, concentration_ug_ml, Rounding.DOWN)
        return exact - exact % step_ul_day

    steps = tuple(FlexStep(start_s=s.start_s, rate_ul_day=rate(s.rate_ul_day)) for s in p.steps)
    volumes = [
        divide(b.volume_ul * p.concentration_ug_ml, concentration_ug_ml, Rounding.DOWN) for b in p.boluses
    ]
    boluses = tuple(replace(b, volume_ul=v) for b, v in zip(p.boluses, volumes, strict=True) if v > 0)
    return replace(p, concentration_ug_ml=concentration_ug_ml, steps=steps, boluses=boluses)

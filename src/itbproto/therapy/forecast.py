"""Forecasts and clinical helpers: when the reservoir empties, when to refill, bridge and priming boluses.

All in integers; every rounding goes the safe way and is stated:
- times at which something runs out are rounded *down* (warn early);
- a bridge bolus's duration is rounded *up* (deliver no faster than prescribed).
"""

from __future__ import annotations

from dataclasses import dataclass

from itbproto.errors import TherapyStateError
from itbproto.therapy.commands import bridge_duration_s
from itbproto.therapy.flows import SCALE, seconds_until_volume
from itbproto.therapy.state import TherapyState, planned_flows
from itbproto.wire.enums import BolusKind
from itbproto.wire.messages import BolusStart

__all__ = ["HORIZON_S", "Forecast", "bridge_bolus", "forecast", "priming_bolus"]

HORIZON_S = 400 * SCALE  # look at most this far ahead


@dataclass(frozen=True, slots=True)
class Forecast:
    """Device times (s) at which things happen if nothing changes; None: not within the horizon."""

    empty_at: int | None
    low_reservoir_at: int | None  # the low-reservoir alarm (volume or days threshold, whichever first)
    stability_ends_at: int  # the drug in the reservoir must be replaced by then
    refill_by: int | None  # the earliest of the above: schedule the refill before it

    def days_until(self, t: int | None, now: int) -> int | None:
        """Whole days from ``now`` to ``t``, rounded down."""
        return None if t is None else (t - now) // SCALE


def forecast(state: TherapyState) -> Forecast:
    """When ``state``'s reservoir empties and when its alarms and refill fall due."""
    now = state.now
    empty_at = _when_delivered(state, state.reservoir_scaled)
    by_volume = _when_delivered(state, state.reservoir_scaled - state.thresholds.low_reservoir_ul * SCALE)
    candidates = [by_volume] if by_volume is not None else []
    if empty_at is not None:
        candidates.append(max(now, empty_at - state.thresholds.low_reservoir_days * SCALE))
    low_at = min(candidates, default=None)
    stability_ends = state.stability_ends_at
    due = [t for t in (empty_at, low_at, stability_ends) if t is not None]
    return Forecast(empty_at, low_at, stability_ends, min(due) if due else None)


def _when_delivered(state: TherapyState, volume_scaled: int) -> int | None:
    """Device time at which the plan has delivered ``volume_scaled`` (rounded down), looking a month
    at a time up to the horizon."""
    start, remaining, horizon = state.now, volume_scaled, state.now + HORIZON_S
    while start < horizon:
        end = min(start + 30 * SCALE, horizon)
        flows = planned_flows(state, start, end)
        seconds = seconds_until_volume(flows, start, remaining)
        if seconds is not None:
            return start + seconds
        remaining -= sum(f.volume_scaled for f in flows)
        start = end
    return None


def bridge_bolus(state: TherapyState) -> BolusStart:
    """The bridge after a concentration change: deliver the drug still in the fluid path at the prescribed
    daily dose, in place of the basal flow (duration rounded up, so never faster). The pump computes the
    same bridge itself for ``RefillConfirm(bridge=True)``."""
    if state.prescription is None:
        raise TherapyStateError("a bridge needs a prescription in force")
    volume = state.path.volume_scaled // SCALE
    return BolusStart(kind=BolusKind.BRIDGE, volume_ul=volume, duration_s=bridge_duration_s(state))


def priming_bolus(state: TherapyState, duration_s: int) -> BolusStart:
    """The priming bolus after implant or catheter work: push the saline out of the fluid path."""
    return BolusStart(
        kind=BolusKind.PRIMING, volume_ul=state.path.saline_scaled // SCALE, duration_s=duration_s
    )

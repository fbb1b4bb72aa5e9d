"""Forecasts and clinical helpers: when the reservoir empties, when to refill, bridge and priming boluses.

All in integers; every rounding goes the safe way and is stated:
- times at which something runs out are rounded *down* (warn early);
- a bridge bolus's duration is rounded *up* (deliver no faster than prescribed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from itbproto.core.therapy.battery import drain_scaled, first_second
from itbproto.core.therapy.commands import bridge_duration_s
from itbproto.core.therapy.flows import SCALE, seconds_until_volume, volume_between
from itbproto.core.therapy.state import REFILL_TIMEOUT_S, Battery, TherapyState, planned_flows
from itbproto.core.wire.enums import BolusKind, TherapyMode
from itbproto.core.wire.messages import MAX_DURATION_S, BolusStart
from itbproto.errors import TherapyStateError

__all__ = ["HORIZON_S", "Forecast", "bridge_bolus", "forecast", "next_event_at", "priming_bolus"]

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


def next_event_at(state: TherapyState) -> int | None:
    """The next device time after ``state.now`` at which something happens if nothing is done: a bolus
    or a suspension ends, a refill times out, a silenced alarm sounds again, the reservoir runs low or
    empty, the drug expires, the battery reaches its indicators. Never later than the event (an emulator
    sleeping until then misses nothing); the battery's time may come early, then ask again."""
    now = state.now
    times = [state.stability_ends_at, *(a.silenced_until for a in state.alarms if a.silenced_until)]
    if state.bolus is not None:
        times.append(state.bolus.end)
    if state.delivery_mode is TherapyMode.SUSPENDED and state.suspended_until:
        times.append(state.suspended_until)  # (the pump's own hold ends with it: its alarm clears then)
    if state.refill is not None:
        times.append(state.refill.started_at + REFILL_TIMEOUT_S)
    if (state.prescription is not None or state.bolus is not None) and not state.empty:
        ahead = forecast(state)
        times += [t for t in (ahead.empty_at, ahead.low_reservoir_at) if t is not None]
        if ahead.empty_at is not None:  # (rounded down: the last drop may leave in the second after it)
            times.append(ahead.empty_at + 1)
    battery = _battery_event_at(state)
    if battery is not None:
        times.append(battery)
    return min((t for t in times if t > now), default=None)


def _battery_event_at(state: TherapyState) -> int | None:
    """When the charge reaches the next indicator's level, pumping as planned (never later: a reservoir
    that runs dry pumps less, and is an event itself)."""
    if state.battery is Battery.EOS:
        return None
    gap = state.charge_scaled - (state.eri_reserve_scaled if state.battery is Battery.OK else 0)
    if gap <= 0:
        return None  # reached: the indicator is raised now

    def drain(start: int, end: int) -> Callable[[int], int]:
        flows = () if state.empty else planned_flows(state, start, end)
        return lambda t: drain_scaled(state.profile, t - start, volume_between(flows, start, t))

    # what is not periodic first (a bolus, a suspension); from then on every day drains the same
    start, end = state.now, max(state.now, state.bolus.end if state.bolus else 0, state.suspended_until)
    if drain(start, end)(end) < gap:
        gap -= drain(start, end)(end)
        days = (gap - 1) // drain(end, end + SCALE)(end + SCALE)
        gap -= days * drain(end, end + SCALE)(end + SCALE)
        start = end + days * SCALE
        end = start + SCALE
    drained = drain(start, end)
    return first_second(start, end, lambda t: drained(t) >= gap)


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
    same bridge itself for ``RefillConfirm(bridge=True)``, however long it takes; a ``BolusStart`` carries
    at most ``MAX_DURATION_S`` (TherapyStateError beyond it: bridge at the refill)."""
    if state.prescription is None:
        raise TherapyStateError("a bridge needs a prescription in force")
    volume, duration = state.path.volume_scaled // SCALE, bridge_duration_s(state)
    if duration > MAX_DURATION_S:
        raise TherapyStateError(f"a bridge of {duration} s is longer than a BolusStart can carry")
    return BolusStart(kind=BolusKind.BRIDGE, volume_ul=volume, duration_s=duration)


def priming_bolus(state: TherapyState, duration_s: int) -> BolusStart:
    """The priming bolus after implant or catheter work: push the saline out of the fluid path."""
    return BolusStart(
        kind=BolusKind.PRIMING, volume_ul=state.path.saline_scaled // SCALE, duration_s=duration_s
    )

"""The rolling 24 h window at the catheter tip, and the hold that keeps it when surgery moves drug closer.

DOSE-001 counts what reached the tip during the last 24 h and what the plan brings there, until the path's
present contents have left it. A command is refused when some window goes over the limit; surgery is never
refused (it is a fact), so when a shorter path would bring drug into a window that still holds drug from
before, the pump holds delivery instead, for the shortest time that keeps every window within the limit.
"""

from __future__ import annotations

from collections.abc import Callable

from itbproto.core.therapy.flows import SCALE, clip, max_window_dose, seconds_until_volume
from itbproto.core.therapy.state import TherapyState, planned_flows, planned_tip_flows, running

__all__ = ["FLUSH_HORIZON_S", "flushed_at", "shortest_hold_s", "worst_window_scaled"]

#: how far ahead the drug in the fluid path is followed to the tip (the slowest rate clears it in days)
FLUSH_HORIZON_S = 30 * SCALE


def flushed_at(state: TherapyState) -> int:
    """When what the fluid path holds now has all left the tip, pushed by what is planned (the motor
    running): the end of the transient after which the tip gets the reservoir's drug (``now`` + the horizon
    if it never does)."""
    outlet = planned_flows(running(state), state.now, state.now + FLUSH_HORIZON_S)
    seconds = seconds_until_volume(outlet, state.now, state.path.volume_scaled)
    return state.now + (FLUSH_HORIZON_S if seconds is None else seconds + 1)


def worst_window_scaled(state: TherapyState) -> int:
    """The most drug (ng × 86 400) at the tip in any 24 h window starting from 24 h ago until the path has
    cleared (at least a day ahead; after that the tip gets the schedule, which DOSE-002 bounds): what
    ``state`` delivered, then what it plans."""
    now = state.now
    ahead = max(now + SCALE, flushed_at(state))
    flows = clip(state.delivered, now - SCALE, now) + planned_tip_flows(state, ahead + SCALE + 2)
    return max_window_dose(flows, SCALE, since=now - SCALE, until=ahead)


def _within(state: TherapyState) -> bool:
    p = state.prescription
    return p is None or worst_window_scaled(state) <= p.max_daily_dose_ng * SCALE


def shortest_hold_s(held: Callable[[int], TherapyState], at_least: int = 0) -> int:
    """The fewest seconds (from ``at_least`` up to a day) that delivery must be held, ``held(s)`` being the
    state with it held for s, so that no window goes over the prescription's limit: 0 when none is needed.
    A day at most: after it, no window holds both what was delivered and what the hold delays."""
    if _within(held(at_least)):
        return at_least
    lo, hi = at_least, SCALE  # held(lo) goes over; held(hi) is the answer if nothing shorter is
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _within(held(mid)) else (mid, hi)
    return hi

"""The battery: charge drained by the electronics and by the motor, in exact integers.

Charge is counted in nC × 86 400 (*scaled*, like volumes): the electronics draw the profile's
``battery_idle_na`` (nA, that is nC per second) all the time, and the motor takes ``motor_nc_per_ul`` nC
for every µL it pumps, so over ``s`` seconds that pump ``volume_scaled`` the drain is
``idle × s × 86 400 + motor × volume_scaled``, exactly. The pump reaches its **end of service** (EOS)
when the charge is spent, and its **elective replacement indicator** (ERI) when what is left would last
only ``eri_lead_days`` more at the programmed daily volume, so ERI comes at least that lead before EOS
unless the programmed volume is raised after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from itbproto.core.therapy.flows import SCALE, Flow, volume_between
from itbproto.core.therapy.profile import DeviceProfile
from itbproto.core.therapy.schedule import daily_volume_scaled
from itbproto.core.wire.messages import Prescription

__all__ = ["NC_PER_MC", "capacity_scaled", "daily_drain_scaled", "drain_scaled", "first_second", "spent_at"]

NC_PER_MC = 1_000_000


def capacity_scaled(profile: DeviceProfile) -> int:
    """The charge of a new battery (nC × 86 400)."""
    return profile.battery_capacity_mc * NC_PER_MC * SCALE


def drain_scaled(profile: DeviceProfile, seconds: int, volume_scaled: int) -> int:
    """What ``seconds`` of life that pump ``volume_scaled`` (µL × 86 400) take from the battery."""
    return profile.battery_idle_na * seconds * SCALE + profile.motor_nc_per_ul * volume_scaled


def daily_drain_scaled(profile: DeviceProfile, prescription: Prescription | None) -> int:
    """What a day at ``prescription`` (or idle, without one) takes from the battery."""
    volume = daily_volume_scaled(prescription) if prescription is not None else 0
    return drain_scaled(profile, SCALE, volume)


def first_second(lo: int, hi: int, reached: Callable[[int], bool]) -> int:
    """The first time in [lo, hi] at which ``reached`` (false, then true for good) holds; ``hi`` if none
    earlier does."""
    while lo < hi:
        mid = (lo + hi) // 2
        if reached(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def spent_at(profile: DeviceProfile, flows: Iterable[Flow], start: int, end: int, charge_scaled: int) -> int:
    """The first second in [start, end] by which pumping ``flows`` from ``start`` has drained
    ``charge_scaled``; ``end`` if it is not drained before."""
    flows = tuple(flows)
    return first_second(
        start,
        end,
        lambda t: drain_scaled(profile, t - start, volume_between(flows, start, t)) >= charge_scaled,
    )

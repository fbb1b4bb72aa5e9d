"""The simulation as a picture: reservoir, daily dose and battery over the days, refills and alarms marked.

Every refill done is a line on the reservoir, every alarm raised a dashed line across the three panels; the
legend names each kind once (:func:`marks` chooses them: it needs no matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from itbemu.simulate import Simulation
from itbproto.core.wire import AlarmCode

__all__ = ["Mark", "marks", "plot"]

_ALARMS = {
    AlarmCode.LOW_RESERVOIR: ("low reservoir", "tab:orange"),
    AlarmCode.EMPTY_RESERVOIR: ("empty reservoir", "tab:red"),
    AlarmCode.BATTERY_ERI: ("battery ERI", "tab:purple"),
    AlarmCode.BATTERY_EOS: ("battery EOS", "black"),
    AlarmCode.MOTOR_STALL: ("motor stall", "tab:brown"),
    AlarmCode.DRUG_EXPIRED: ("drug expired", "tab:olive"),
}
_REFILL = ("refill", "tab:green")


@dataclass(frozen=True, slots=True)
class Mark:
    """A vertical line on the plot: a refill (``code`` None) or an alarm raised."""

    day: float
    code: AlarmCode | None
    colour: str
    label: str | None  # the legend's entry: on the first mark of each kind only


def marks(sim: Simulation) -> list[Mark]:
    """The refills the pump confirmed (a pump at end of service is not refilled: the simulation stops
    refilling it), then every alarm raised, in the order they came; each kind named once for the legend."""
    named: set[str] = set()

    def label(name: str) -> str | None:
        if name in named:
            return None
        named.add(name)
        return name

    drawn = [Mark(day, None, _REFILL[1], label(_REFILL[0])) for day in sim.refills]
    for day, code in sim.alarms:
        name, colour = _ALARMS.get(code, (code.name.lower().replace("_", " "), "tab:gray"))
        drawn.append(Mark(day, code, colour, label(name)))
    return drawn


def plot(sim: Simulation, path: str | Path, title: str = "itbemu simulation") -> Path:
    """Write a PNG of the run to ``path``; return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d.day for d in sim.days]
    fig, (reservoir, dose, battery) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    reservoir.plot(days, [d.reservoir_ul / 1000 for d in sim.days], color="tab:blue")
    reservoir.set_ylabel("reservoir (mL)")
    dose.plot(days, [d.delivered_ng / 1000 for d in sim.days], color="tab:red")
    dose.set_ylabel("delivered (µg/day)")
    battery.plot(days, [d.battery_pct for d in sim.days], color="tab:gray")
    battery.set_ylabel("battery (%)")
    battery.set_xlabel("day")
    drawn = marks(sim)
    for mark in drawn:
        if mark.code is None:
            reservoir.axvline(mark.day, color=mark.colour, alpha=0.3, linewidth=1, label=mark.label)
            continue
        for axis in (reservoir, dose, battery):
            axis.axvline(
                mark.day,
                color=mark.colour,
                linestyle="--",
                linewidth=1,
                label=mark.label if axis is reservoir else None,
            )
    if drawn:
        reservoir.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

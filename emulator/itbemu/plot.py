"""The simulation as a picture: reservoir, daily dose and battery over the days, refills and alarms marked."""

from __future__ import annotations

from pathlib import Path

from itbemu.simulate import Simulation
from itbproto.wire import AlarmCode

__all__ = ["plot"]

_MARKS = {
    AlarmCode.LOW_RESERVOIR: ("low reservoir", "tab:orange"),
    AlarmCode.EMPTY_RESERVOIR: ("empty", "tab:red"),
    AlarmCode.BATTERY_ERI: ("battery ERI", "tab:purple"),
    AlarmCode.BATTERY_EOS: ("battery EOS", "black"),
    AlarmCode.MOTOR_STALL: ("motor stall", "tab:brown"),
    AlarmCode.DRUG_EXPIRED: ("drug expired", "tab:olive"),
}


def plot(sim: Simulation, path: str | Path, title: str = "itbemu simulation") -> Path:
    """Write a PNG of the run to ``path``; return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d.day for d in sim.days]
    fig, (reservoir, dose, battery) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    reservoir.plot(days, [d.reservoir_ul / 1000 for d in sim.days], color="tab:blue")
    reservoir.set_ylabel("reservoir (mL)")
    for day in sim.refills:
        reservoir.axvline(day, color="tab:green", alpha=0.3, linewidth=1)
    dose.plot(days, [d.delivered_ng / 1000 for d in sim.days], color="tab:red")
    dose.set_ylabel("delivered (µg/day)")
    battery.plot(days, [d.battery_pct for d in sim.days], color="tab:gray")
    battery.set_ylabel("battery (%)")
    battery.set_xlabel("day")
    for code, when in sim.first_alarm.items():
        label, colour = _MARKS.get(code, (code.name.lower(), "tab:gray"))
        for axis in (reservoir, dose, battery):
            axis.axvline(
                when, color=colour, linestyle="--", linewidth=1, label=label if axis is reservoir else None
            )
    if sim.first_alarm:
        reservoir.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

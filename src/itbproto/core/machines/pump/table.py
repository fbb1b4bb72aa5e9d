"""The pump's mode table, and the mode a device state is in.

The mode is not stored anywhere: it follows from the therapy state
(:func:`mode_of`). The table is the law every change obeys: a command moves the
mode only along one of its transitions (its guard is the safety engine: a
refused command moves nothing), and time moves it only along the time-driven
ones (:data:`TIME_TRIGGERS`). Drawn in specs/diagrams/pump.mmd.
"""

from __future__ import annotations

from itbproto.core.machines.definition import Definition
from itbproto.core.therapy.state import Battery, TherapyState
from itbproto.core.wire.enums import TherapyMode

__all__ = ["PUMP", "TIME_TRIGGERS", "mode_of"]

_REFILL = ["refill_begun", "residual_measured", "drug_staged"]
_RUNNING = ["stopped", "infusing", "bolus", "suspended"]
_BACK = ["stopped", "infusing", "suspended"]  # where a refill returns to: the mode it began in


def _to(trigger: str, sources: list[str] | str, dests: list[str]) -> list[dict[str, object]]:
    """One transition per destination; the therapy model says which one a change lands in."""
    return [{"trigger": trigger, "source": sources, "dest": d} for d in dests]


PUMP = Definition(
    name="pump",
    states=(*_RUNNING, *_REFILL, "mri", "end_of_service"),
    transitions=(
        *_to("commit", "stopped", ["infusing", "bolus"]),
        {"trigger": "commit", "source": ["infusing", "bolus", "suspended"], "dest": "="},
        {"trigger": "set_rate", "source": ["infusing", "bolus", "suspended"], "dest": "="},
        {"trigger": "start_bolus", "source": ["stopped", "infusing"], "dest": "bolus"},
        *_to("cancel_bolus", "bolus", ["infusing", "stopped"]),
        *_to("bolus_done", "bolus", ["infusing", "stopped", "suspended", "mri"]),
        {"trigger": "suspend", "source": ["infusing", "bolus"], "dest": "suspended"},
        {"trigger": "resume", "source": ["suspended", "stopped"], "dest": "infusing"},
        *_to("auto_resume", "suspended", ["infusing", "bolus"]),  # (a bridge held back by the pump starts)
        {"trigger": "begin_refill", "source": _BACK, "dest": "refill_begun"},
        {"trigger": "record_residual", "source": "refill_begun", "dest": "residual_measured"},
        {"trigger": "stage_drug", "source": ["residual_measured", "drug_staged"], "dest": "drug_staged"},
        *_to("confirm_refill", "drug_staged", [*_BACK, "bolus"]),  # (a bridge starts a bolus)
        *_to("abort_refill", _REFILL, _BACK),
        *_to("refill_timeout", _REFILL, _BACK),
        # surgery is recorded whatever the mode; it ends a running bolus (a bridge starts again); the pump
        # holds delivery if a shorter path would bring too much drug to the tip too soon (DOSE-001)
        *_to("record_procedure", "bolus", ["infusing", "stopped"]),
        *_to("record_procedure", ["infusing", "bolus"], ["suspended"]),
        {"trigger": "record_procedure", "source": [*_BACK, *_REFILL, "mri", "end_of_service"], "dest": "="},
        {"trigger": "record_procedure", "source": "bolus", "dest": "bolus"},  # a bridge starts again
        {"trigger": "begin_mri", "source": _BACK, "dest": "mri"},
        {"trigger": "end_mri", "source": "mri", "dest": "stopped"},
        {"trigger": "end_of_service", "source": [*_RUNNING, *_REFILL, "mri"], "dest": "end_of_service"},
        # a valve-gated pump's valves opened by a magnetic field: an uncommanded bolus
        {"trigger": "discharge", "source": ["stopped", "infusing", "suspended", "mri"], "dest": "bolus"},
    ),
    initial="stopped",
)

#: the moves time makes on its own (a bolus ends, a suspension runs out, a refill times out, ...)
TIME_TRIGGERS = ("bolus_done", "auto_resume", "refill_timeout", "end_of_service", "discharge")


def mode_of(therapy: TherapyState) -> str:
    """The state of the mode table that a therapy state is in."""
    if therapy.battery is Battery.EOS:
        return "end_of_service"
    refill = therapy.refill
    if refill is not None:
        if refill.staged_volume_ul is not None:
            return "drug_staged"
        return "residual_measured" if refill.measured_ul is not None else "refill_begun"
    if therapy.bolus is not None and not therapy.held:
        return "bolus"
    return {
        TherapyMode.INFUSING: "infusing",
        TherapyMode.SUSPENDED: "suspended",
        TherapyMode.MRI: "mri",
    }.get(therapy.mode, "stopped")

"""Human-readable rendering at the edge: µL as mL, ng as µg, enums by name.

Nothing here feeds back into dose math; it only turns exact integers into
exact decimal text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

from itbproto.core.machines.session import Summary
from itbproto.core.therapy import SCALE
from itbproto.core.therapy.schedule import daily_dose_scaled
from itbproto.core.wire import messages as m
from itbproto.core.wire.fields import ArrayType, FieldSpec, RecordType
from itbproto.core.wire.message import Message
from itbproto.units import Concentration, Dose, FlowRate, Volume

__all__ = ["clock_time", "describe", "format_value", "span", "summary_lines"]

_UNITS: dict[str, type[Volume | Dose | Concentration | FlowRate]] = {
    "µL": Volume,
    "ng": Dose,
    "µg/mL": Concentration,
    "µL/day": FlowRate,
}


def format_value(spec: FieldSpec, value: Any) -> str:
    """One field value as text in display units."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, frozenset):
        return ", ".join(m.name for m in sorted(value)) or "(none)"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool):
        return "yes" if value else "no"
    quantity = _UNITS.get(spec.unit)
    if quantity is not None and isinstance(value, int):
        shown = str(quantity(value))  # the exact value in the field's unit, and in the unit people read
        exact = f"{value} {spec.unit}"
        return exact if shown == exact else f"{exact} ({shown})"
    if spec.unit == "day" and isinstance(value, int):
        return f"{value} day" if value == 1 else f"{value} days"
    if spec.unit and isinstance(value, int):
        return f"{value} {spec.unit}"
    return str(value)


def clock_time(offset_s: int) -> str:
    """An offset from midnight as ``HH:MM`` (``HH:MM:SS`` when it has seconds)."""
    hours, rest = divmod(offset_s, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def span(seconds: int) -> str:
    """A duration as people say it: ``10 min``, ``4 h``, ``1 h 30 min``, ``45 s``."""
    parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "min"), (seconds % 60, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 s"


def _dose(volume_ul: int, concentration_ug_ml: int) -> Dose:
    return Dose(volume_ul * concentration_ug_ml)


def summary_lines(summary: Summary, device: m.DeviceInfo | None, titles: dict[str, str]) -> list[str]:
    """What a clinician confirms before a prescription is committed (the pump's numbers, in µg): the pump,
    the schedule step by step, the daily dose the pump computed, the limits, the boluses, the hazards to
    acknowledge (``titles``: rule ID → title)."""
    new, c = summary.new, summary.new.concentration_ug_ml
    who = f"pump {device.serial} ({device.profile})" if device is not None else "the pump"
    lines = [f"Program {who}: {new.mode.name.lower()}, baclofen {c} µg/mL"]
    for step in new.steps:
        per_day = _dose(step.rate_ul_day, c)
        lines.append(f"  from {clock_time(step.start_s)}  {step.rate_ul_day} µL/day  ({per_day}/day)")
    for bolus in new.boluses:
        each = f"{bolus.volume_ul} µL ({_dose(bolus.volume_ul, c)}) over {span(bolus.duration_s)}"
        lines.append(f"  bolus at {clock_time(bolus.start_s)}  {each}")
    daily = f"{Dose(summary.daily_dose_ng)}/day (computed by the pump)"
    if summary.old is not None:
        daily += f"; in force now: {Dose(daily_dose_scaled(summary.old) // SCALE)}/day"
        daily += f" at {summary.old.concentration_ug_ml} µg/mL"
    lines += [
        f"  daily dose            {daily}",
        f"  at most in any 24 h   {Dose(new.max_daily_dose_ng)}",
        f"  largest bolus         {Dose(new.max_bolus_ng)}",
    ]
    p = new.patient
    if p.max_per_day:
        each = f"{p.volume_ul} µL ({_dose(p.volume_ul, c)}) over {span(p.duration_s)}"
        lines.append(f"  patient bolus         {each}, {span(p.lockout_s)} apart, {p.max_per_day} a day")
    else:
        lines.append("  patient bolus         none")
    for rule in summary.acknowledge:
        lines.append(f"  to acknowledge        {rule}: {titles.get(rule, '')}".rstrip(": "))
    return lines


def _rows(specs: tuple[FieldSpec, ...], record: Any, prefix: str) -> Iterator[tuple[str, str]]:
    for spec in specs:
        value = getattr(record, spec.name)
        name = f"{prefix}{spec.name}"
        wire = spec.wire
        if isinstance(wire, RecordType):
            yield from _rows(wire.specs, value, f"{name}.")
        elif isinstance(wire, ArrayType) and isinstance(wire.item, RecordType):
            if not value:
                yield name, "(none)"
            for i, item in enumerate(value):
                yield from _rows(wire.item.specs, item, f"{name}[{i}].")
        elif isinstance(wire, ArrayType):
            yield name, ", ".join(value) if value else "(none)"
        else:
            yield name, format_value(spec, value)


def describe(message: Message) -> list[tuple[str, str]]:
    """The message's fields as (dotted name, display text) rows."""
    return list(_rows(message.specs(), message, ""))

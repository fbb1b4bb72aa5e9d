"""Human-readable rendering at the edge: µL as mL, ng as µg, enums by name.

Nothing here feeds back into dose math; it only turns exact integers into
exact decimal text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

from itbproto.units import Concentration, Dose, FlowRate, Volume
from itbproto.wire.fields import ArrayType, FieldSpec, RecordType
from itbproto.wire.message import Message

__all__ = ["describe", "format_value"]

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
        return str(quantity(value))
    if spec.unit and isinstance(value, int):
        return f"{value} {spec.unit}"
    return str(value)


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

"""Exact integer quantities for ITB dose math.

Every quantity is an ``int`` in the protocol's base unit, wrapped in a small
immutable type so that mypy refuses mixing kinds (adding a volume to a dose is
a type error, and a runtime ``TypeError`` too):

| type                   | base unit | relation                                       |
|------------------------|-----------|------------------------------------------------|
| :class:`Volume`        | µL        | reservoir 20 mL = ``Volume(20_000)``           |
| :class:`Concentration` | µg/mL     | baclofen 50, 500, 1000, 2000                   |
| :class:`Dose`          | ng        | ``dose(volume, conc)``: µL × µg/mL = ng, exact |
| :class:`FlowRate`      | µL/day    | pump flow                                      |
| :class:`DoseRate`      | ng/day    | ``daily_dose(rate, conc)``, exact              |
| :class:`Duration`      | s         | device time, never the wall clock              |

Multiplying is always exact. Where the protocol must divide (volume delivered
in a number of seconds, rate for a target dose), the caller names the rounding
direction: there is no default, because the safe direction depends on the
question (round a delivered dose *up* when checking a maximum, a remaining
volume *down* when predicting an empty reservoir). Conversions to µg, mL and
mg/day exist only for display, as exact decimal strings; no float is used.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Self

__all__ = [
    "SECONDS_PER_DAY",
    "Concentration",
    "Dose",
    "DoseRate",
    "Duration",
    "FlowRate",
    "Rounding",
    "Volume",
    "daily_dose",
    "divide",
    "dose",
    "duration_to_deliver",
    "rate_for_daily_dose",
    "volume_delivered",
    "volume_for_dose",
]

SECONDS_PER_DAY = 86_400


class Rounding(enum.Enum):
    """Direction of an unavoidable integer division; the caller picks the safe one."""

    DOWN = "down"
    UP = "up"


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Exact integer division rounded in the stated direction (denominator > 0)."""
    if denominator <= 0:
        raise ValueError(f"denominator must be positive, got {denominator}")
    if rounding is Rounding.DOWN:
        return numerator // denominator
    return -(-numerator // denominator)


def _decimal(value: int, digits: int) -> str:
    """``value / 10**digits`` as an exact decimal string without trailing zeros."""
    if digits == 0:
        return str(value)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**digits)
    text = f"{frac:0{digits}d}".rstrip("0")
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


@dataclass(frozen=True, slots=True, order=True)
class _Quantity:
    """An exact integer amount in one base unit. Same-kind arithmetic only."""

    value: int
    unit: ClassVar[str] = ""
    display_unit: ClassVar[str] = ""
    display_digits: ClassVar[int] = 0

    def __post_init__(self) -> None:
        if type(self.value) is not int:
            raise TypeError(f"{type(self).__name__} takes an int in {self.unit}, got {self.value!r}")

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self.value + other.value)

    def __sub__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self.value - other.value)

    def __mul__(self, factor: int) -> Self:
        if type(factor) is not int:
            return NotImplemented
        return type(self)(self.value * factor)

    __rmul__ = __mul__

    def __neg__(self) -> Self:
        return type(self)(-self.value)

    def __str__(self) -> str:
        return f"{_decimal(self.value, self.display_digits)} {self.display_unit}"

    @classmethod
    def zero(cls) -> Self:
        return cls(0)


class Volume(_Quantity):
    """Volume in µL."""

    __slots__ = ()

    unit = "µL"
    display_unit = "mL"
    display_digits = 3

    @classmethod
    def ml(cls, millilitres: int) -> Self:
        return cls(millilitres * 1000)


class Concentration(_Quantity):
    """Drug concentration in µg/mL."""

    __slots__ = ()

    unit = "µg/mL"
    display_unit = "µg/mL"


class Dose(_Quantity):
    """Drug amount in ng."""

    __slots__ = ()

    unit = "ng"
    display_unit = "µg"
    display_digits = 3

    @classmethod
    def ug(cls, micrograms: int) -> Self:
        return cls(micrograms * 1000)

    @classmethod
    def mg(cls, milligrams: int) -> Self:
        return cls(milligrams * 1_000_000)


class FlowRate(_Quantity):
    """Flow in µL/day."""

    __slots__ = ()

    unit = "µL/day"
    display_unit = "mL/day"
    display_digits = 3


class DoseRate(_Quantity):
    """Drug rate in ng/day."""

    __slots__ = ()

    unit = "ng/day"
    display_unit = "mg/day"
    display_digits = 6

    @classmethod
    def ug_per_day(cls, micrograms: int) -> Self:
        return cls(micrograms * 1000)


class Duration(_Quantity):
    """Time span in seconds of device time."""

    __slots__ = ()

    unit = "s"
    display_unit = "s"

    @classmethod
    def hours(cls, hours: int) -> Self:
        return cls(hours * 3600)

    @classmethod
    def days(cls, days: int) -> Self:
        return cls(days * SECONDS_PER_DAY)


def dose(volume: Volume, concentration: Concentration) -> Dose:
    """Drug in a volume: µL × µg/mL = ng, exactly."""
    return Dose(volume.value * concentration.value)


def daily_dose(rate: FlowRate, concentration: Concentration) -> DoseRate:
    """Drug per day at a flow: µL/day × µg/mL = ng/day, exactly."""
    return DoseRate(rate.value * concentration.value)


def volume_for_dose(amount: Dose, concentration: Concentration, *, rounding: Rounding) -> Volume:
    """Volume that holds ``amount`` of drug, rounded in the stated direction."""
    return Volume(divide(amount.value, concentration.value, rounding))


def rate_for_daily_dose(target: DoseRate, concentration: Concentration, *, rounding: Rounding) -> FlowRate:
    """Flow that delivers ``target`` per day, rounded in the stated direction."""
    return FlowRate(divide(target.value, concentration.value, rounding))


def volume_delivered(rate: FlowRate, elapsed: Duration, *, rounding: Rounding) -> Volume:
    """Volume a constant flow delivers in ``elapsed``: rate × s / 86 400, rounded as stated."""
    return Volume(divide(rate.value * elapsed.value, SECONDS_PER_DAY, rounding))


def duration_to_deliver(volume: Volume, rate: FlowRate, *, rounding: Rounding) -> Duration:
    """Time a constant flow needs to deliver ``volume``, rounded as stated (rate > 0)."""
    return Duration(divide(volume.value * SECONDS_PER_DAY, rate.value, rounding))

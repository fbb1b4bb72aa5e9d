"""Device profiles and the drug table: the numbers the rules and the dose math use.

The values live in specs/profiles/*.toml and specs/drugs.toml; :mod:`itbproto.io.specfiles`
reads them. Here they are plain immutable records, built from a mapping that
must name every field exactly (a typo in a spec file is an error, not a default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from itbproto.core.wire.enums import PatientGroup, PumpKind
from itbproto.core.wire.messages import AlarmThresholds
from itbproto.errors import SpecError

__all__ = ["DeviceProfile", "Drug", "from_mapping"]

R = TypeVar("R")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """One pump model: reservoir, flow range and resolution, alarm defaults, battery. Integer units."""

    id: str
    model: str
    description: str
    reservoir_capacity_ul: int
    min_rate_ul_day: int
    max_rate_ul_day: int
    rate_step_ul_day: int
    max_flex_steps: int
    max_bolus_rate_ul_day: int
    pump_kind: PumpKind
    pump_path_ul: int
    catheter_ul: int
    low_reservoir_ul: int
    low_reservoir_days: int
    eri_lead_days: int
    reannunciate_s: int
    battery_capacity_mc: int  # a new battery's charge, mC
    battery_idle_na: int  # what the electronics draw all the time, nA
    motor_nc_per_ul: int  # what pumping one µL takes, nC

    def __post_init__(self) -> None:
        if self.battery_capacity_mc <= 0 or self.battery_idle_na <= 0 or self.motor_nc_per_ul < 0:
            raise SpecError(self.id, "the battery needs a charge and an idle drain above 0")

    @property
    def thresholds(self) -> AlarmThresholds:
        """The alarm thresholds a new pump of this model starts with."""
        return AlarmThresholds(
            low_reservoir_ul=self.low_reservoir_ul,
            low_reservoir_days=self.low_reservoir_days,
            eri_lead_days=self.eri_lead_days,
            reannunciate_s=self.reannunciate_s,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Drug:
    """A drug the pump may hold, with the label numbers the rules use."""

    name: str
    code: int
    concentrations_ug_ml: tuple[int, ...]
    screening_doses_ng: tuple[int, ...]
    screening_interval_s: int
    child_first_screening_ng: int
    maintenance_adult_ng_day: tuple[int, ...]
    ceiling_adult_ng_day: int
    maintenance_child_ng_day: tuple[int, ...]
    ceiling_child_ng_day: int
    titration_spinal_pct: int
    titration_cerebral_pct: int
    titration_child_pct: int
    titration_interval_s: int
    stability_days: int

    def ceiling_ng_day(self, group: PatientGroup) -> int:
        return self.ceiling_child_ng_day if group is PatientGroup.CHILD else self.ceiling_adult_ng_day


def from_mapping(cls: type[R], data: Mapping[str, Any], source: str) -> R:
    """Build a record from a parsed spec file; every field present, no extras, ints stay ints."""
    fields = {f.name: f for f in dataclasses.fields(cast(Any, cls))}
    missing = sorted(set(fields) - set(data))
    extra = sorted(set(data) - set(fields))
    if missing or extra:
        raise SpecError(source, f"missing {missing}, unknown {extra}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        wanted = str(fields[name].type)
        if wanted == "PumpKind":
            if not isinstance(value, str) or value.upper() not in PumpKind.__members__:
                raise SpecError(
                    source, f"{name} must be one of {[k.name.lower() for k in PumpKind]}, got {value!r}"
                )
            value = PumpKind[value.upper()]
        if wanted == "int" and (type(value) is not int):
            raise SpecError(source, f"{name} must be an integer, got {value!r}")
        if wanted == "str" and type(value) is not str:
            raise SpecError(source, f"{name} must be text, got {value!r}")
        if wanted.startswith("tuple"):
            if not isinstance(value, list) or not all(type(v) is int for v in value):
                raise SpecError(source, f"{name} must be a list of integers, got {value!r}")
            value = tuple(value)
        values[name] = value
    return cls(**values)

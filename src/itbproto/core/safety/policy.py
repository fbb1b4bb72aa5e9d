"""Safety policy: the rule parameters in force. It can only tighten the catalog's defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from itbproto.core.safety.catalog import RuleCatalog
from itbproto.core.safety.rules import CHECKS
from itbproto.core.wire import messages as m
from itbproto.errors import PolicyError, SpecError

__all__ = ["SELF_ENFORCED", "SafetyPolicy", "verify_catalog", "within_policy"]

#: rules that no command check enforces: the policy itself refuses a looser value
SELF_ENFORCED = frozenset({"POLICY-001"})


def verify_catalog(catalog: RuleCatalog) -> None:
    """The engine's checks and the catalog must name the same rules: none unenforced, none unknown."""
    checked = {check.rule_id for check in CHECKS}
    unknown = sorted(checked - set(catalog.ids))
    unenforced = sorted(set(catalog.ids) - checked - SELF_ENFORCED)
    if unknown or unenforced:
        raise SpecError(
            "safety rule catalog", f"checks for unknown rules {unknown}; no check for {unenforced}"
        )


class SafetyPolicy:
    """Parameter values for every rule of a catalog, defaults unless tightened.

    ``SafetyPolicy(catalog, {"TITR-001.spinal_pct": 20})`` lowers the spinal
    titration step; ``{"TITR-001.spinal_pct": 40}`` raises :class:`PolicyError`
    (POLICY-001), as does a parameter the catalog does not have. No rule can be
    switched off: the engine always runs every rule. A catalog with a rule the engine
    does not enforce, or without one it does, is refused (:class:`~itbproto.errors.SpecError`).
    """

    __slots__ = ("_values", "catalog")

    def __init__(self, catalog: RuleCatalog, overrides: Mapping[str, int] | None = None) -> None:
        verify_catalog(catalog)
        self.catalog = catalog
        values = {f"{rule.id}.{p.name}": p.default for rule in catalog for p in rule.params}
        problems: list[str] = []
        for key, value in (overrides or {}).items():
            if key not in values:
                problems.append(f"{key} is not a parameter of the catalog")
                continue
            rule_id, name = key.split(".", 1)
            param = next(p for p in catalog[rule_id].params if p.name == name)
            if type(value) is not int or not param.is_tighter_or_equal(value):
                problems.append(
                    f"{key} = {value!r} is looser than {param.default} (may only go {param.tighten})"
                )
            elif not param.within_limit(value):
                problems.append(f"{key} = {value!r} is past {param.limit}, the most the pump can enforce")
            else:
                values[key] = value
        if problems:
            raise PolicyError(("POLICY-001",) * len(problems), tuple(problems))
        self._values = MappingProxyType(values)

    def __call__(self, rule_id: str, name: str) -> int:
        """The value in force for ``rule_id``'s parameter ``name``."""
        return self._values[f"{rule_id}.{name}"]

    @property
    def values(self) -> Mapping[str, int]:
        return self._values


def within_policy(t: m.AlarmThresholds, policy: SafetyPolicy) -> m.AlarmThresholds:
    """The thresholds nearest to ``t`` that RES-001, BATT-002 and ALARM-001 allow under ``policy`` (a pump
    built with a policy starts within it)."""
    return replace(
        t,
        low_reservoir_ul=max(t.low_reservoir_ul, policy("RES-001", "min_low_reservoir_ul")),
        low_reservoir_days=max(t.low_reservoir_days, policy("RES-001", "min_low_reservoir_days")),
        eri_lead_days=max(t.eri_lead_days, policy("BATT-002", "min_eri_lead_days")),
        reannunciate_s=min(t.reannunciate_s, policy("ALARM-001", "max_reannunciate_s")),
    )

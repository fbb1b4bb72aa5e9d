"""The rule catalog (specs/safety-rules.toml) as typed, immutable records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from itbproto.errors import SpecError

__all__ = ["HAZARDS", "Param", "Rule", "RuleCatalog", "parse_catalog"]

HAZARDS = frozenset(
    {"overdose", "withdrawal", "wrong-drug", "overfill", "unannunciated-alarm", "corrupted-record"}
)


@dataclass(frozen=True, slots=True)
class Param:
    """A rule parameter: its catalog default and the only direction a policy may move it."""

    name: str
    default: int
    tighten: Literal["lower", "higher"]

    def is_tighter_or_equal(self, value: int) -> bool:
        return value <= self.default if self.tighten == "lower" else value >= self.default


@dataclass(frozen=True, slots=True)
class Rule:
    """One safety rule: ID, what it says, which hazard it prevents, where the numbers come from."""

    id: str
    title: str
    hazard: str
    statement: str
    source: str
    params: tuple[Param, ...]


@dataclass(frozen=True, slots=True)
class RuleCatalog:
    rules: tuple[Rule, ...]

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __getitem__(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)


def parse_catalog(data: Mapping[str, Any], source: str) -> RuleCatalog:
    """Check and convert the parsed TOML of a rule catalog."""
    rules: list[Rule] = []
    for entry in data.get("rule", []):
        keys = {"id", "title", "hazard", "statement", "source"}
        if not keys <= set(entry) or not set(entry) <= keys | {"params"}:
            raise SpecError(source, f"rule entry needs exactly {sorted(keys)} and optional params: {entry}")
        if entry["hazard"] not in HAZARDS:
            raise SpecError(source, f"{entry['id']}: unknown hazard {entry['hazard']!r}")
        params = []
        for name, spec in entry.get("params", {}).items():
            if type(spec.get("default")) is not int or spec.get("tighten") not in ("lower", "higher"):
                raise SpecError(source, f"{entry['id']}.{name}: needs an integer default and tighten")
            params.append(Param(name, spec["default"], spec["tighten"]))
        rules.append(
            Rule(
                entry["id"],
                entry["title"],
                entry["hazard"],
                entry["statement"],
                entry["source"],
                tuple(params),
            )
        )
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids) or not ids:
        raise SpecError(source, "rule IDs must be present and unique")
    return RuleCatalog(tuple(rules))

"""The rule catalog (specs/safety-rules.toml) as typed, immutable records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from itbproto.errors import SpecError

__all__ = ["HAZARDS", "LEVELS", "Param", "Rule", "RuleCatalog", "parse_catalog"]

HAZARDS = frozenset(
    {"overdose", "withdrawal", "wrong-drug", "overfill", "unannunciated-alarm", "corrupted-record"}
)
#: a hard limit refuses; an acknowledgeable hazard refuses unless the command acknowledges it
LEVELS = ("limit", "acknowledge")


@dataclass(frozen=True, slots=True)
class Param:
    """A rule parameter: its catalog default and the only direction a policy may move it."""

    name: str
    default: int
    tighten: Literal["lower", "higher"]
    #: how far a policy may tighten it (what the pump can enforce), if anywhere
    limit: int | None = None

    def is_tighter_or_equal(self, value: int) -> bool:
        return value <= self.default if self.tighten == "lower" else value >= self.default

    def within_limit(self, value: int) -> bool:
        if self.limit is None:
            return True
        return value >= self.limit if self.tighten == "lower" else value <= self.limit


@dataclass(frozen=True, slots=True)
class Rule:
    """One safety rule: ID, what it says, which hazard it prevents, where the numbers come from."""

    id: str
    title: str
    hazard: str
    statement: str
    source: str
    params: tuple[Param, ...]
    level: Literal["limit", "acknowledge"] = "limit"

    @property
    def acknowledgeable(self) -> bool:
        return self.level == "acknowledge"


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
        if not keys <= set(entry) or not set(entry) <= keys | {"params", "level"}:
            raise SpecError(
                source, f"rule entry needs exactly {sorted(keys)}, optional params and level: {entry}"
            )
        if entry["hazard"] not in HAZARDS:
            raise SpecError(source, f"{entry['id']}: unknown hazard {entry['hazard']!r}")
        level = entry.get("level", "limit")
        if level not in LEVELS:
            raise SpecError(source, f"{entry['id']}: level must be one of {LEVELS}, not {level!r}")
        params = []
        for name, spec in entry.get("params", {}).items():
            limit = spec.get("limit")
            if (
                type(spec.get("default")) is not int
                or spec.get("tighten") not in ("lower", "higher")
                or not (limit is None or type(limit) is int)
                or not set(spec) <= {"default", "tighten", "limit"}
            ):
                raise SpecError(
                    source, f"{entry['id']}.{name}: needs an integer default, tighten, an optional limit"
                )
            params.append(Param(name, spec["default"], spec["tighten"], limit))
        rules.append(
            Rule(
                entry["id"],
                entry["title"],
                entry["hazard"],
                entry["statement"],
                entry["source"],
                tuple(params),
                level,
            )
        )
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids) or not ids:
        raise SpecError(source, "rule IDs must be present and unique")
    return RuleCatalog(tuple(rules))

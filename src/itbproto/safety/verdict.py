"""Verdicts, the context a rule sees, and the registry of rule checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from itbproto.errors import SafetyViolation
from itbproto.safety.policy import SafetyPolicy
from itbproto.therapy.state import TherapyState
from itbproto.wire.message import Message

__all__ = ["REGISTRY", "Check", "Context", "Verdict", "Violation", "check"]


@dataclass(frozen=True, slots=True)
class Violation:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the engine decided: accepted when no rule is violated."""

    command: Message
    violations: tuple[Violation, ...] = ()
    #: the state the command produces (whether or not it was accepted); None if it cannot apply
    after: TherapyState | None = field(default=None, compare=False, repr=False)

    @property
    def accepted(self) -> bool:
        return not self.violations

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.rule_id for v in self.violations))

    def raise_if_refused(self) -> None:
        if self.violations:
            raise SafetyViolation(
                tuple(v.rule_id for v in self.violations), tuple(v.reason for v in self.violations)
            )


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule sees: the command, the state before it and (for consequence rules) after it."""

    command: Message
    before: TherapyState
    after: TherapyState | None
    policy: SafetyPolicy

    def param(self, rule_id: str, name: str) -> int:
        return self.policy(rule_id, name)


@dataclass(frozen=True, slots=True)
class Check:
    rule_id: str
    commands: tuple[type[Message], ...]
    consequence: bool  # needs ``after``: runs only once the preconditions hold
    fn: Callable[[Context], Iterator[str]]


#: every rule check, in registration order; filled by itbproto.safety.rules at import
REGISTRY: list[Check] = []


def check(
    rule_id: str, *commands: type[Message], consequence: bool = False
) -> Callable[[Callable[[Context], Iterator[str]]], Callable[[Context], Iterator[str]]]:
    """Register a check for ``rule_id`` on these command types; it yields one reason per violation."""

    def register(fn: Callable[[Context], Iterator[str]]) -> Callable[[Context], Iterator[str]]:
        REGISTRY.append(Check(rule_id, commands, consequence, fn))
        return fn

    return register

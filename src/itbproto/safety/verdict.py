"""Verdicts, the typed context a rule check sees, and the record of one registered check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from itbproto.errors import SafetyViolation
from itbproto.therapy.state import TherapyState
from itbproto.wire.message import Message

if TYPE_CHECKING:
    from itbproto.safety.policy import SafetyPolicy

__all__ = ["Check", "Context", "Verdict", "Violation"]

C = TypeVar("C", bound=Message, covariant=True)


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
class Context(Generic[C]):
    """What a rule sees: the command, the state before it and (for consequence rules) after it."""

    command: C
    before: TherapyState
    after: TherapyState | None
    policy: SafetyPolicy

    def param(self, rule_id: str, name: str) -> int:
        return self.policy(rule_id, name)


@dataclass(frozen=True)  # no slots: Check[...](...) sets __orig_class__
class Check(Generic[C]):
    """One registered check: rule ``rule_id`` on these command types.

    ``fn`` yields one reason per violation. A consequence check needs the state the
    command produces and runs only when the command can apply at all.
    """

    rule_id: str
    commands: tuple[type[C], ...]
    fn: Callable[[Context[C]], Iterator[str]]
    consequence: bool = False

"""Verdicts, the typed context a rule check sees, and the record of one registered check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from itbproto.core.therapy.state import TherapyState
from itbproto.core.wire.message import Message
from itbproto.errors import AcknowledgementRequired, SafetyViolation

if TYPE_CHECKING:
    from itbproto.core.safety.policy import SafetyPolicy

__all__ = ["Check", "Context", "Verdict", "Violation"]

C = TypeVar("C", bound=Message, covariant=True)


@dataclass(frozen=True, slots=True)
class Violation:
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the engine decided.

    ``violations`` break hard limits: the command is refused. ``hazards`` are the
    acknowledgeable rules the command meets; ``acknowledged`` are the rule IDs the
    command carries. Accepted when no limit is broken and every hazard is acknowledged.
    """

    command: Message
    violations: tuple[Violation, ...] = ()
    hazards: tuple[Violation, ...] = ()
    acknowledged: frozenset[str] = frozenset()
    #: the state the command produces (whether or not it was accepted); None if it cannot apply
    after: TherapyState | None = field(default=None, compare=False, repr=False)

    @property
    def unacknowledged(self) -> tuple[Violation, ...]:
        """The hazards the command does not acknowledge."""
        return tuple(v for v in self.hazards if v.rule_id not in self.acknowledged)

    @property
    def accepted(self) -> bool:
        return not self.violations and not self.unacknowledged

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Why it is refused: the broken limits, or else the hazards still to acknowledge."""
        refusing = self.violations or self.unacknowledged
        return tuple(dict.fromkeys(v.rule_id for v in refusing))

    @property
    def to_acknowledge(self) -> tuple[str, ...]:
        """The rule IDs of every hazard (what a summary shows the user before a commit)."""
        return tuple(dict.fromkeys(v.rule_id for v in self.hazards))

    def raise_if_refused(self) -> None:
        """SafetyViolation for a broken limit; AcknowledgementRequired for hazards not acknowledged."""
        if self.violations:
            raise SafetyViolation(
                tuple(v.rule_id for v in self.violations), tuple(v.reason for v in self.violations)
            )
        if self.unacknowledged:
            missing = self.unacknowledged
            raise AcknowledgementRequired(tuple(v.rule_id for v in missing), tuple(v.reason for v in missing))


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

"""The rule engine: ``evaluate(command, state, policy) -> Verdict``.

The same engine runs in the programmer before a command is sent and in the pump
before it is applied. It always runs every check registered for the command's
type (:data:`itbproto.core.safety.rules.CHECKS`, an explicit table that
:class:`~itbproto.core.safety.policy.SafetyPolicy` verifies against the catalog):
there is no switch to skip one, and a policy can only tighten parameters.
Checks run in two phases: preconditions on the command and the state before it;
then consequences on the state the command would produce (computed with
:func:`itbproto.core.therapy.state.apply`), whenever the command can apply at all.
The verdict lists every violated rule. Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Any

from itbproto.core.safety.policy import SafetyPolicy
from itbproto.core.safety.rules import CHECKS
from itbproto.core.safety.verdict import Context, Verdict, Violation
from itbproto.core.therapy.commands import apply
from itbproto.core.therapy.state import TherapyState
from itbproto.core.wire.message import Message
from itbproto.core.wire.messages import Acknowledgement, StagePrescription
from itbproto.errors import TherapyStateError

__all__ = ["acknowledged_by", "enforcement_points", "evaluate"]


def _run(ctx: Context[Any], consequence: bool) -> list[Violation]:
    found = []
    for check in CHECKS:
        if check.consequence is consequence and isinstance(ctx.command, check.commands):
            found += [Violation(check.rule_id, reason) for reason in check.fn(ctx)]
    return found


def acknowledged_by(command: Message) -> frozenset[str]:
    """The rule IDs a command acknowledges (none for a command that carries no acknowledgement)."""
    ack = getattr(command, "ack", None)
    return frozenset(ack.rules) if isinstance(ack, Acknowledgement) else frozenset()


def evaluate(command: Message, state: TherapyState, policy: SafetyPolicy) -> Verdict:
    """Every rule the command would break or hazard it would meet in ``state``.

    Raises :class:`~itbproto.errors.TherapyStateError` (or a subclass) when the
    command cannot apply at all in this state (for example a commit with nothing
    staged): that is a wrong-state error, not a safety verdict.
    """
    pre = _run(Context(command, state, None, policy), consequence=False)
    after: TherapyState | None = None
    try:
        after = apply(state, command)
    except TherapyStateError:
        if not [v for v in pre if not policy.catalog[v.rule_id].acknowledgeable]:
            raise  # no broken limit explains why it cannot apply
    found = pre if after is None else [*pre, *_run(Context(command, state, after, policy), consequence=True)]
    limits = tuple(v for v in found if not policy.catalog[v.rule_id].acknowledgeable)
    hazards = tuple(v for v in found if policy.catalog[v.rule_id].acknowledgeable)
    acknowledged = acknowledged_by(command)
    if isinstance(command, StagePrescription):  # staging shows the hazards; the commit acknowledges them
        acknowledged = frozenset(v.rule_id for v in hazards)
    return Verdict(command, limits, hazards, acknowledged, after)


def enforcement_points() -> dict[str, tuple[str, ...]]:
    """Rule ID -> the commands (message names) its checks run on; POLICY-001 runs on policies."""
    points: dict[str, dict[str, None]] = {"POLICY-001": {"SafetyPolicy": None}}
    for check in CHECKS:
        for command in check.commands:
            points.setdefault(check.rule_id, {})[command.__name__] = None
    return {rule_id: tuple(names) for rule_id, names in points.items()}

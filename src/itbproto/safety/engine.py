"""The rule engine: ``evaluate(command, state, policy) -> Verdict``.

The same engine runs in the programmer before a command is sent and in the pump
before it is applied. It always runs every check registered for the command's
type: there is no switch to skip one, and a policy can only tighten parameters.
Checks run in two phases: preconditions on the command and the state before it;
then consequences on the state the command would produce (computed with
:func:`itbproto.therapy.state.apply`), whenever the command can apply at all.
The verdict lists every violated rule. Pure: no I/O, no clock.
"""

from __future__ import annotations

from itbproto.errors import TherapyStateError
from itbproto.safety import rules as _rules  # noqa: F401  (registers the checks)
from itbproto.safety.policy import SafetyPolicy
from itbproto.safety.verdict import REGISTRY, Context, Verdict, Violation
from itbproto.therapy.state import TherapyState, apply
from itbproto.wire.message import Message

__all__ = ["enforced_rule_ids", "enforcement_points", "evaluate"]


def _run(ctx: Context, consequence: bool) -> list[Violation]:
    found = []
    for item in REGISTRY:
        if item.consequence is consequence and isinstance(ctx.command, item.commands):
            found += [Violation(item.rule_id, reason) for reason in item.fn(ctx)]
    return found


def evaluate(command: Message, state: TherapyState, policy: SafetyPolicy) -> Verdict:
    """Every rule the command would break in ``state``; accepted when none.

    Raises :class:`~itbproto.errors.TherapyStateError` when the command cannot
    apply at all in this state (for example a commit with nothing staged): that
    is a wrong-state error, not a safety verdict.
    """
    pre = _run(Context(command, state, None, policy), consequence=False)
    try:
        after = apply(state, command)
    except TherapyStateError:
        if pre:  # a broken precondition is why it cannot apply: report the rules
            return Verdict(command, tuple(pre))
        raise
    post = _run(Context(command, state, after, policy), consequence=True)
    return Verdict(command, (*pre, *post), after)


def enforced_rule_ids() -> frozenset[str]:
    """IDs of the rules that have at least one registered check."""
    return frozenset(item.rule_id for item in REGISTRY)


def enforcement_points() -> dict[str, tuple[str, ...]]:
    """Rule ID -> the commands (message names) its checks run on; POLICY-001 runs on policies."""
    points: dict[str, dict[str, None]] = {"POLICY-001": {"SafetyPolicy": None}}
    for item in REGISTRY:
        for command in item.commands:
            points.setdefault(item.rule_id, {})[command.__name__] = None
    return {rule_id: tuple(names) for rule_id, names in points.items()}

"""Safety rules: the catalog from specs/safety-rules.toml, policies that only tighten, and the engine.

verdict = evaluate(command, state, policy)
if not verdict.accepted:
    print(verdict.rule_ids)        # e.g. ('TITR-001',)
"""

from itbproto.core.safety.catalog import Param, Rule, RuleCatalog, parse_catalog
from itbproto.core.safety.engine import enforcement_points, evaluate
from itbproto.core.safety.policy import SafetyPolicy, within_policy
from itbproto.core.safety.rules import residual_needs_acknowledgement
from itbproto.core.safety.verdict import Verdict, Violation

__all__ = [
    "Param",
    "Rule",
    "RuleCatalog",
    "SafetyPolicy",
    "Verdict",
    "Violation",
    "enforcement_points",
    "evaluate",
    "parse_catalog",
    "residual_needs_acknowledgement",
    "within_policy",
]

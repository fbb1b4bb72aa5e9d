"""Traceability: every rule of the catalog is enforced, and proven by at least one marked test."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import ROOT
from itbproto.core.safety import SafetyPolicy
from itbproto.core.safety.catalog import Rule
from itbproto.core.safety.rules import CHECKS
from itbproto.errors import SpecError
from itbproto.io.specfiles import load_drug, load_rules
from itbproto.tools.specgen import rule_tests


def test_every_rule_has_a_test() -> None:
    traced = rule_tests(ROOT / "tests")
    untested = [rule_id for rule_id in load_rules().ids if not traced.get(rule_id)]
    assert not untested, f"rules without a @pytest.mark.rule test: {untested}"


def test_every_rule_is_enforced_and_every_check_is_a_rule() -> None:
    catalog = set(load_rules().ids)
    enforced = {check.rule_id for check in CHECKS}
    assert enforced <= catalog
    assert catalog - enforced == {"POLICY-001"}  # enforced by SafetyPolicy itself


def test_a_policy_refuses_a_catalog_the_engine_does_not_match() -> None:
    catalog = load_rules()
    extra = Rule("NEW-001", "new", "overdose", "a rule nobody implemented", "test", ())
    with pytest.raises(SpecError, match="NEW-001"):
        SafetyPolicy(replace(catalog, rules=(*catalog.rules, extra)))
    with pytest.raises(SpecError, match="DOSE-001"):
        SafetyPolicy(replace(catalog, rules=tuple(r for r in catalog.rules if r.id != "DOSE-001")))


def test_catalog_defaults_are_no_looser_than_the_label() -> None:
    rules, drug = load_rules(), load_drug()
    defaults = {f"{r.id}.{p.name}": p.default for r in rules for p in r.params}
    assert defaults["DOSE-003.adult_ceiling_ng_day"] <= drug.ceiling_adult_ng_day
    assert defaults["DOSE-003.child_ceiling_ng_day"] <= drug.ceiling_child_ng_day
    assert defaults["TITR-001.spinal_pct"] <= drug.titration_spinal_pct
    assert defaults["TITR-001.cerebral_pct"] <= drug.titration_cerebral_pct
    assert defaults["TITR-001.child_pct"] <= drug.titration_child_pct
    assert defaults["TITR-002.interval_s"] >= drug.titration_interval_s
    assert defaults["BOL-002.interval_s"] >= drug.screening_interval_s

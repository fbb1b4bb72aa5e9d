"""The QA oracle's own bookkeeping, on flows as the pump reports them (test_qa_suite.py runs it whole)."""

from __future__ import annotations

from itbproto.qa.oracle import DAY, Oracle, Piece, Violation
from itbproto.safety import SafetyPolicy
from itbproto.specfiles import load_rules

T0 = 86_400_000


def oracle(pieces: list[Piece], old_drug: list[list[int]]) -> Oracle:
    o = Oracle(SafetyPolicy(load_rules()), 20_000, pieces=pieces)
    o.old_drug = old_drug
    return o


def test_a_second_two_concentrations_shared_is_taken_in_the_paths_order() -> None:
    """The pump reports a crossing second as two flows of that second, sorted by rate: the 50 µg/mL part
    may come first in the list though the 500 µg/mL part left the tip first."""
    pieces = [
        Piece(T0, T0 + 2_325, 6_970, 500),
        Piece(T0 + 2_325, T0 + 2_326, 1_420, 50),
        Piece(T0 + 2_325, T0 + 2_326, 5_550, 500),
        Piece(T0 + 2_326, T0 + 2_738, 6_970, 50),
    ]
    o = oracle(pieces, [[6_970 * 2_325 + 5_550, 500], [1_420 + 6_970 * 412, 50], [10 * DAY, 500]])
    found: list[Violation] = []
    o._match(T0, T0 + 2_738, found)
    assert found == []
    assert o.old_drug == [[10 * DAY, 500]]


def test_the_tip_getting_the_new_drug_while_the_path_holds_old_is_found() -> None:
    o = oracle([Piece(T0, T0 + 3_600, 800, 50)], [[250 * DAY, 500]])
    found: list[Violation] = []
    o._match(T0, T0 + 3_600, found)
    assert [v.rule_id for v in found] == ["DOSE-001"]

"""specs/rule-tables.md: each rule's table as the tests pin it (tests/test_rule_table.py and
tests/test_rule_layers.py): its level, commands, categories and phases, tightened parameters, boundaries and
the layers that enforce it. The committed document must be what the tables say; rewrite it with
``ITB_WRITE_RULE_TABLES=1 pytest tests/test_rule_tables_doc.py`` (``make specs`` does)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from itbproto.io.specfiles import load_rules
from test_rule_layers import LAYERS, SERVES
from test_rule_table import TABLE, Boundary, Row

DOC = Path(__file__).resolve().parent.parent / "specs" / "rule-tables.md"


def _names(items: Iterable[object]) -> str:
    """Categories as their own text, enum members by name, lower case."""
    return ", ".join(str(getattr(i, "name", i)).lower() for i in items)


def _boundary(b: Boundary) -> str:
    tightened = "; ".join(f"`{t.param}` = {t.value:,}: {t.accepted:,} / {t.refused:,}" for t in b.tighten)
    scope = f" ({_names(b.categories)})" if b.categories else ""
    return f"| {b.what}{scope} | {b.accepted:,} | {b.refused:,} | {tightened or '–'} |"


def _layers(rule_id: str) -> str:
    guards = [f"{', '.join(LAYERS[key])} ({key})" for key, served in SERVES.items() if served == rule_id]
    return "; ".join([", ".join(LAYERS[rule_id]), *guards])


def _section(rule_id: str, title: str, row: Row) -> list[str]:
    lines = [
        f"## {rule_id} {title}",
        "",
        f"- level: {row.level}; layers: {_layers(rule_id)}",
        f"- commands: {', '.join(c.__name__ for c in row.commands) or '– (policies)'}",
        f"- categories: {', '.join(str(c) for c in row.categories)}; phases: {_names(row.phases)}",
        f"- parameters: {', '.join(f'`{p}`' for p in row.params) or '–'}",
    ]
    lines += [f"- {c.__name__} cannot break it: {why}" for c, why in row.unbreakable.items()]
    if row.boundaries:
        lines += ["", "| boundary | last accepted | first refused | tightened: accepted / refused |"]
        lines += ["|---|---|---|---|"]
        lines += [_boundary(b) for b in row.boundaries]
    return [*lines, ""]


def render() -> str:
    """The document, rule by rule in the catalog's order."""
    lines = [
        "# Rule tables",
        "",
        "Generated from the tests (tests/test_rule_table.py, tests/test_rule_layers.py): what each rule is",
        "pinned by. Every boundary is tested from both sides, for every category and phase listed, and again",
        "under each tightened policy; every command listed has a case that breaks the rule; each layer is",
        "tested on its own. Units are in the boundary names (ng, µL, µL/day, s, %).",
        "",
    ]
    for rule in load_rules().rules:
        lines += _section(rule.id, rule.title, TABLE[rule.id])
    return "\n".join(lines)


def test_the_committed_rule_tables_are_the_tests_tables() -> None:
    text = render()
    if os.environ.get("ITB_WRITE_RULE_TABLES"):
        DOC.write_text(text)
    assert DOC.read_text() == text, "rewrite: ITB_WRITE_RULE_TABLES=1 pytest tests/test_rule_tables_doc.py"

"""The clinical mutant corpus is well-formed: every edit still applies once and leaves valid source."""

from __future__ import annotations

import ast
import tomllib

import pytest
from bench.clinical_mutants import FIELDS, ROOT, Mutant, load

from itbproto.io.specfiles import load_rules

MUTANTS = load()


def test_the_corpus_has_unique_ids_and_catalog_rules() -> None:
    ids = [m.id for m in MUTANTS]
    assert len(set(ids)) == len(ids), "mutant ids must be unique"
    assert {m.rule for m in MUTANTS} <= set(load_rules().ids)
    assert all(getattr(m, field) for m in MUTANTS for field in FIELDS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_each_mutant_is_one_edit_that_still_parses(mutant: Mutant) -> None:
    assert mutant.old != mutant.new
    path = ROOT / mutant.file
    mutated = mutant.apply(path.read_text(encoding="utf-8"))  # ValueError unless `old` occurs once
    if path.suffix == ".py":
        ast.parse(mutated, filename=str(path))
    else:
        tomllib.loads(mutated)


def test_an_edit_that_does_not_apply_exactly_once_is_refused() -> None:
    mutant = Mutant("m", "DOSE-001", "x.py", old="a", new="b", why="")
    assert mutant.apply("xay") == "xby"
    for source in ("xyz", "aa"):
        with pytest.raises(ValueError, match="not once"):
            mutant.apply(source)

"""The pump defect corpus (tests/pump_defects.toml) is well-formed, and the packaged QA suite catches it."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
from bench.clinical_mutants import FIELDS, Mutant, load

from conftest import ROOT
from itbproto.io.specfiles import load_rules
from itbproto.qa.oracle import PROTOCOL

CORPUS = ROOT / "tests" / "pump_defects.toml"
DEFECTS = load(CORPUS)


def test_the_corpus_is_large_varied_and_names_rules() -> None:
    ids = [d.id for d in DEFECTS]
    assert len(set(ids)) == len(ids), "defect ids must be unique"
    assert len(DEFECTS) >= 30
    assert len({d.area for d in DEFECTS}) >= 8
    assert {d.rule for d in DEFECTS} <= {
        *load_rules().ids,
        *PROTOCOL,
    }  # or a protocol check the QA suite names
    assert all(getattr(d, field) for d in DEFECTS for field in (*FIELDS, "area"))


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.id for d in DEFECTS])
def test_each_defect_is_one_edit_that_still_compiles(defect: Mutant) -> None:
    assert defect.old != defect.new
    path = ROOT / defect.file
    mutated = defect.apply(path.read_text(encoding="utf-8"))  # ValueError unless `old` occurs once
    if path.suffix == ".py":
        compile(mutated, str(path), "exec")
    else:
        tomllib.loads(mutated)


@pytest.mark.slow
def test_the_quick_profile_catches_the_corpus() -> None:
    """Issue 23's bar: the quick profile, in-process, catches at least 90 % of the hand-written defects."""
    command = [
        sys.executable,
        "bench/clinical_mutants.py",
        "--corpus",
        "tests/pump_defects.toml",
        "--tests",
        "src/itbproto/qa",  # the packaged suite as QA runs it: the boundary probes, then the random search
        "--jobs",
        "2",
    ]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    summary = json.loads(out.splitlines()[-1])
    assert summary["mutants"] == len(DEFECTS)
    assert summary["score"] >= 0.9, f"the QA suite misses {summary['survivors']}"

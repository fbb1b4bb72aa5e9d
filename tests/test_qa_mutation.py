"""The QA suite's mutants (bench/qa_mutation.py): mutmut's operators, enumerated and sampled repeatably, each
one edit that still compiles. Nothing here runs the suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.mutant_runner import ROOT
from bench.qa_mutation import Mutant, all_mutants, equivalents, main, mutants_of, sample, source_files

SOURCE = '''"""A docstring."""
__all__ = ["f"]


def f(a: int, b: int = 2) -> bool:
    """Not mutated either."""
    if not a:
        raise ValueError("a message")
    return a < b and g("code", "two words")
'''


@pytest.fixture(scope="module")
def everything() -> list[Mutant]:
    return all_mutants()


def test_one_file_gives_mutmut_operators_in_order_and_skips_words_docstrings_and_all() -> None:
    mutants = mutants_of("x.py", SOURCE)
    assert mutants == mutants_of("x.py", SOURCE)
    assert [m.line for m in mutants] == sorted(m.line for m in mutants)
    shown = {(m.line, m.operator, "".join(m.new).strip()) for m in mutants}
    assert (5, "number", "def f(a: int, b: int = 3) -> bool:") in shown
    assert (7, "remove_unary_ops", "if a:") in shown
    assert (9, "swap_op", 'return a <= b and g("code", "two words")') in shown
    assert (9, "swap_op", 'return a < b or g("code", "two words")') in shown
    assert (9, "string", 'return a < b and g("XXcodeXX", "two words")') in shown
    assert (9, "return_none", "return None") in shown
    assert {m.line for m in mutants} <= {5, 7, 9}  # not the docstrings, __all__ or the raise
    assert not any(w in "".join(m.new) for m in mutants for w in ("XXtwo", "TWO", "XXa message"))
    assert len({m.key for m in mutants}) == len(mutants)


def test_every_pump_file_is_enumerated_in_order_with_unique_keys(everything: list[Mutant]) -> None:
    assert {m.file for m in everything} <= set(source_files())
    assert "src/itbproto/core/firmware.py" in source_files()
    assert not any(f.startswith("src/itbproto/qa/") for f in source_files())
    assert [(m.file, m.line) for m in everything] == sorted((m.file, m.line) for m in everything)
    assert len({m.key for m in everything}) == len(everything) > 1000


def test_a_seed_gives_the_same_sample(everything: list[Mutant]) -> None:
    chosen = sample(everything, 300, 23)
    assert chosen == sample(list(everything), 300, 23)
    assert chosen != sample(everything, 300, 24)
    assert len(set(chosen)) == 300
    assert sample(everything[:5], 300, 23) == everything[:5]


def test_every_sampled_mutant_is_one_edit_that_compiles(everything: list[Mutant]) -> None:
    for m in sample(everything, 300, 23):
        source = (ROOT / m.file).read_text(encoding="utf-8")
        mutated = m.apply(source)
        assert m.old, m.key
        assert mutated != source, m.key
        compile(mutated, m.file, "exec")
        with pytest.raises(ValueError, match="has changed"):
            m.apply("")


def test_the_equivalents_name_existing_mutants_with_reasons(everything: list[Mutant], tmp_path: Path) -> None:
    marked = equivalents()
    assert set(marked) <= {m.key for m in everything}
    assert all(reason.strip() for reason in marked.values())
    entry = f"[[equivalent]]\nkey = {json.dumps(everything[0].key)}\nreason = "
    (tmp_path / "ok.toml").write_text(entry + '"why"\n')
    assert equivalents(tmp_path / "ok.toml") == {everything[0].key: "why"}
    (tmp_path / "bad.toml").write_text(entry + '""\n')
    with pytest.raises(ValueError, match="a reason"):
        equivalents(tmp_path / "bad.toml")


def test_list_prints_the_sample_without_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list", "--sample", "5", "--seed", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [f"{m.id}  {m.key}" for m in sample(all_mutants(), 5, 7)]
    assert lines[-1].startswith("5 of ")
    chosen = lines[0].split()[0]
    assert main(["--list", "--only", chosen]) == 0
    assert capsys.readouterr().out.splitlines()[0] == lines[0]
    with pytest.raises(SystemExit):
        main(["--list", "--only", "nosuchkey"])

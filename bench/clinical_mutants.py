"""The clinical mutant corpus (bench/clinical_mutants.toml): does the test suite catch real clinical bugs?

Each mutant is one hand-written edit that models a bug a programmer could make (an acknowledgement that
waives a hard limit, a rule skipped for one kind of bolus, a boundary off by one, a tightened policy
ignored, ...). Each worker copies the tree once into a temporary directory; for each mutant it applies the
edit, runs a focused test subset against the copy (PYTHONPATH puts the copy ahead of the editable install)
and restores the file. A mutant is *killed* when a test fails (or the run times out), *survived* when every
test passes, *equivalent* when it survives and the corpus says why no test can tell it from the original.

Another corpus of the same form runs the same way (``--corpus``): tests/pump_defects.toml, the pump defects
the packaged QA suite must catch (``--tests src/itbproto/qa/test_pump_safety.py``). Prints a table, the
survivors with the bug each models, and as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` importable when run as a script
from bench.mutant_runner import ROOT as ROOT
from bench.mutant_runner import edited, environment, run, run_workers

CORPUS = ROOT / "bench" / "clinical_mutants.toml"
#: test files left out of the default subset, which is every other tests/test_*.py (new behaviour tests join
#: it): a kill must come from the fast, behaviour-level tests of the rules, the therapy model and the machines
EXCLUDED = frozenset(
    {
        # transports, servers and subprocesses: slow, and about the links
        "test_attacks.py",
        "test_bleak_bumble.py",
        "test_capture.py",
        "test_client.py",
        "test_emulator_server.py",
        "test_emulator_store.py",
        "test_pairing.py",
        "test_qa_suite.py",
        # the CLI, the examples, the README and the benchmarks
        "test_bench.py",
        "test_cli.py",
        "test_examples.py",
        "test_readme.py",
        # generated documents, spec files and markers
        "test_specfiles.py",
        "test_specs.py",
        "test_traceability.py",
        "test_vectors.py",
        # the wire and security layers
        "test_codec.py",
        "test_fragment.py",
        "test_security.py",
        "test_stream.py",
        "test_units.py",
        # the corpora, and the QA suite's mutants
        "test_clinical_mutants.py",
        "test_pump_defects.py",
        "test_qa_mutation.py",
    }
)
#: a kill must come from behaviour, not from a committed diagram that no longer matches
DESELECTED = ("tests/test_machines.py::test_committed_diagram_matches_the_machine",)
FIELDS = ("id", "rule", "file", "old", "new", "why")
#: what an entry may add: why no test can tell a survivor apart; the part of the behaviour it breaks
OPTIONAL = ("equivalent", "area")


@dataclass(frozen=True)
class Mutant:
    """One edit of the corpus: ``old`` replaced by ``new`` in ``file``, breaking ``rule``."""

    id: str
    rule: str
    file: str
    old: str
    new: str
    why: str
    equivalent: str | None = None
    area: str | None = None

    def apply(self, source: str) -> str:
        """``source`` with the edit made; ValueError unless ``old`` occurs exactly once."""
        count = source.count(self.old)
        if count != 1:
            raise ValueError(f"{self.id}: `old` occurs {count} times in {self.file}, not once")
        return source.replace(self.old, self.new)


@dataclass(frozen=True)
class Result:
    """What the tests made of one mutant."""

    mutant: Mutant
    outcome: str  # killed, survived, equivalent
    seconds: float
    detail: str = ""  # the failing test's line, or "timeout"


def default_subset() -> list[str]:
    """Every test file but the excluded ones."""
    return sorted(f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if p.name not in EXCLUDED)


def load(path: Path = CORPUS) -> list[Mutant]:
    """The corpus; ValueError for an entry without the fields or with unknown ones."""
    mutants = []
    for entry in tomllib.loads(path.read_text(encoding="utf-8"))["mutant"]:
        if not set(FIELDS) <= set(entry) <= {*FIELDS, *OPTIONAL}:
            raise ValueError(f"mutant {entry.get('id')!r} needs exactly {FIELDS} (and optionally {OPTIONAL})")
        mutants.append(Mutant(**entry))
    return mutants


def run_tests(tree: Path, tests: Sequence[str], timeout: float) -> tuple[int | None, float, str]:
    """Run the subset in ``tree``: (exit status or None on timeout, seconds, the last line of a failure)."""
    deselect = [f"--deselect={d}" for d in DESELECTED]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *deselect, *tests]
    env = environment(tree)
    if '"mutation"' in (tree / "tests" / "conftest.py").read_text(encoding="utf-8"):
        env["HYPOTHESIS_PROFILE"] = "mutation"  # the profile's few, repeatable examples
    result = run(command, tree, env, timeout)
    return result.status, result.seconds, result.detail


def judge(tests: Sequence[str]) -> Callable[[Path], Callable[[Mutant], Result]]:
    """A worker's setup: the unmutated copy must pass the subset; a mutant times out at 5 times its time."""

    def setup(tree: Path) -> Callable[[Mutant], Result]:
        status, seconds, detail = run_tests(tree, tests, timeout=600)
        if status != 0:
            raise RuntimeError(f"the unmutated tree fails its tests ({status}): {detail}")
        timeout = max(60.0, 5 * seconds)
        return lambda mutant: _mutant(tree, mutant, tests, timeout)

    return setup


def _mutant(tree: Path, mutant: Mutant, tests: Sequence[str], timeout: float) -> Result:
    with edited(tree, mutant.file, mutant.apply):
        status, seconds, detail = run_tests(tree, tests, timeout)
    if status not in (None, 0, 1, 2):  # 2: interrupted, e.g. a module the mutant broke fails to import
        raise RuntimeError(f"{mutant.id}: pytest exited with {status}: {detail}")
    outcome = ("equivalent" if mutant.equivalent else "survived") if status == 0 else "killed"
    result = Result(mutant, outcome, seconds, "" if status == 0 else detail)
    print(f"{mutant.id:<40} {outcome:<10} {seconds:6.1f}s {result.detail}", file=sys.stderr, flush=True)
    return result


def report(results: list[Result]) -> dict[str, object]:
    """Print the table and the survivors; return the summary."""
    print(f"{'mutant':<40} {'rule':<12} {'outcome':<10} {'seconds':>8}")
    for r in results:
        print(f"{r.mutant.id:<40} {r.mutant.rule:<12} {r.outcome:<10} {r.seconds:8.1f}")
    survivors = [r.mutant for r in results if r.outcome == "survived"]
    if survivors:
        print("\nsurvivors (a test to write):")
        for m in survivors:
            print(f"  {m.id} ({m.rule}): {m.why}")
    wrongly = [r.mutant.id for r in results if r.outcome == "killed" and r.mutant.equivalent]
    if wrongly:
        print(f"\nmarked equivalent but killed (drop the mark): {', '.join(wrongly)}")
    counts = {o: sum(r.outcome == o for r in results) for o in ("killed", "survived", "equivalent")}
    scored = len(results) - counts["equivalent"]
    return {
        "mutants": len(results),
        **counts,
        "score": round(counts["killed"] / scored, 3) if scored else 1.0,
        "survivors": [m.id for m in survivors],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument("--jobs", type=int, default=2, help="workers, each with its own copy (default 2)")
    parser.add_argument("--tests", nargs="+", help="the test files or node ids to run (default: the subset)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus (default: %(default)s)")
    args = parser.parse_args(argv)
    mutants = load(args.corpus)
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            parser.error(f"no such mutants: {sorted(unknown)}")
        mutants = [m for m in mutants if m.id in args.only]
    for m in mutants:  # fail before any run if an edit no longer applies
        m.apply((ROOT / m.file).read_text(encoding="utf-8"))
    results = run_workers(
        mutants, args.jobs, judge(args.tests or default_subset()), prefix="clinical-mutants-"
    )
    summary = report(results)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

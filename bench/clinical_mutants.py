"""The clinical mutant corpus (bench/clinical_mutants.toml): does the test suite catch real clinical bugs?

Each mutant is one hand-written edit that models a bug a programmer could make (an acknowledgement that
waives a hard limit, a rule skipped for one kind of bolus, a boundary off by one, a tightened policy
ignored, ...). Each worker copies the tree once into a temporary directory; for each mutant it applies the
edit, runs a focused test subset against the copy (PYTHONPATH puts the copy ahead of the editable install)
and restores the file. A mutant is *killed* when a test fails (or the run times out), *survived* when every
test passes, *equivalent* when it survives and the corpus says why no test can tell it from the original.

Prints a table, the survivors with the bug each models, and as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "clinical_mutants.toml"
#: what the tests need from the tree (the venv, git and caches stay behind)
COPIED = ("src", "emulator", "tests", "specs", "bench", "examples", "pyproject.toml", "README.md", "Makefile")
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", ".mypy_cache")
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
        # this corpus
        "test_clinical_mutants.py",
    }
)
#: a kill must come from behaviour, not from a committed diagram that no longer matches
DESELECTED = ("tests/test_machines.py::test_committed_diagram_matches_the_machine",)
FIELDS = ("id", "rule", "file", "old", "new", "why")


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
        if not set(FIELDS) <= set(entry) <= {*FIELDS, "equivalent"}:
            raise ValueError(f"mutant {entry.get('id')!r} needs exactly {FIELDS} (and optionally equivalent)")
        mutants.append(Mutant(**entry))
    return mutants


def copy_tree(dest: Path) -> None:
    """What the tests need from the tree, into ``dest`` (no caches)."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=CACHES)
        elif src.exists():
            shutil.copy2(src, dest / name)


def environment(tree: Path) -> dict[str, str]:
    """The copy's code first on the path; no bytecode written (a restored file is never read from a stale
    cache); the mutation profile's few, repeatable examples if conftest defines it."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree / 'emulator'}"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if '"mutation"' in (tree / "tests" / "conftest.py").read_text(encoding="utf-8"):
        env["HYPOTHESIS_PROFILE"] = "mutation"
    return env


def run_tests(tree: Path, tests: Sequence[str], timeout: float) -> tuple[int | None, float, str]:
    """Run the subset in ``tree``: (exit status or None on timeout, seconds, the last line of a failure)."""
    deselect = [f"--deselect={d}" for d in DESELECTED]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *deselect, *tests]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=tree,
        env=environment(tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, time.perf_counter() - start, "timeout"
    failed = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return proc.returncode, time.perf_counter() - start, (failed or out.splitlines()[-1:] or [""])[0]


def check_copy(tree: Path) -> None:
    """The copy's packages are the ones imported, not the editable install's."""
    code = "import itbproto, itbemu; print(itbproto.__file__); print(itbemu.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env=environment(tree),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not all(Path(p).is_relative_to(tree) for p in out):
        raise RuntimeError(f"the copy in {tree} is not what runs: {out}")


class Worker(threading.Thread):
    """One copy of the tree; takes mutants off the queue until it is empty."""

    def __init__(self, work: queue.Queue[Mutant], results: list[Result], tests: Sequence[str]) -> None:
        super().__init__(daemon=True)
        self.work, self.results, self.tests = work, results, tests
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="clinical-mutants-") as tmp:
                self._run(Path(tmp))
        except Exception as exc:  # reported by the main thread
            self.error = exc

    def _run(self, tree: Path) -> None:
        copy_tree(tree)
        check_copy(tree)
        status, seconds, detail = run_tests(tree, self.tests, timeout=600)
        if status != 0:
            raise RuntimeError(f"the unmutated tree fails its tests ({status}): {detail}")
        timeout = max(60.0, 5 * seconds)
        while True:
            try:
                mutant = self.work.get_nowait()
            except queue.Empty:
                return
            self.results.append(self._mutant(tree, mutant, timeout))

    def _mutant(self, tree: Path, mutant: Mutant, timeout: float) -> Result:
        path = tree / mutant.file
        original = path.read_text(encoding="utf-8")
        path.write_text(mutant.apply(original), encoding="utf-8")
        try:
            status, seconds, detail = run_tests(tree, self.tests, timeout)
        finally:
            path.write_text(original, encoding="utf-8")
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
    args = parser.parse_args(argv)
    mutants = load()
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            parser.error(f"no such mutants: {sorted(unknown)}")
        mutants = [m for m in mutants if m.id in args.only]
    for m in mutants:  # fail before any run if an edit no longer applies
        m.apply((ROOT / m.file).read_text(encoding="utf-8"))
    work: queue.Queue[Mutant] = queue.Queue()
    for m in mutants:
        work.put(m)
    results: list[Result] = []
    tests = args.tests or default_subset()
    workers = [Worker(work, results, tests) for _ in range(max(1, min(args.jobs, len(mutants))))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    errors = [w.error for w in workers if w.error is not None]
    if errors:
        raise errors[0]
    order = {m.id: i for i, m in enumerate(mutants)}
    summary = report(sorted(results, key=lambda r: order[r.mutant.id]))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

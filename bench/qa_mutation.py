"""The packaged QA safety suite as a test of pumps: how many mutants of the pump side does it kill?

The mutants are mutmut's (the `mutation` extra, mutmut==3.8.1): its libcst operators, found by its own
visitor with its skips (docstrings, annotations, decorators, the lines of [tool.mutmut]
do_not_mutate_patterns in pyproject.toml), one edit each. One edit at a time reaches what mutmut's
trampolines cannot, so decorated functions (properties) and module and class level code (the rule table,
the mode table, dataclass defaults) are mutated too; ``return x`` also becomes ``return None``; never
``__all__``, nor a string of words (a reason, a message, a log entry's detail: they are for people). Every
mutant of the pump side (SOURCES) is enumerated in order of file, line, column and operator; a seeded
sample of them is run.

For each, the suite (:func:`command`) runs against a copy of the tree with the one edit
(bench/mutant_runner.py). A mutant is *killed* when the suite fails or times out (by default at 3 times its
time on the unmutated tree, measured first in each worker), *survived* when it passes, *equivalent* when it
passes and bench/qa_mutation_survivors.toml says why no pump test could tell it from the original. The
score is killed / (sampled - equivalent).

Prints a table per file, every survivor (file:line, the diff, its key), the score, and as its last line one
JSON object: killed (timeouts included), survived, equivalent, timeouts, sampled, score, per_file (the same
counts), survivors (ids), seconds, baseline_seconds, timeout_seconds, mutants (how many there are), seed,
profile.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
import re
import shutil
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider, WhitespaceInclusivePositionProvider
from mutmut.mutation.file_mutation import NEVER_MUTATE_FUNCTION_NAMES, MutationVisitor, deep_replace
from mutmut.mutation.mutators import OPERATORS_TYPE, mutation_operators
from mutmut.mutation.pragma_handling import IgnoredCode, PragmaVisitor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` importable when run as a script
from bench.mutant_runner import ROOT, Run, copy_tree, edited, environment, run, run_workers

#: the pump side: the safety rules, the therapy model, the pump machine, the firmware
SOURCES = (
    "src/itbproto/core/safety/rules/*.py",
    "src/itbproto/core/therapy/*.py",
    "src/itbproto/core/machines/pump/*.py",
    "src/itbproto/core/firmware.py",
)
SUITE = "src/itbproto/qa"  # the packaged suite: the boundary probes, then the stateful search
SURVIVORS = ROOT / "bench" / "qa_mutation_survivors.toml"
#: the unmutated suite must pass within this (seconds)
BASELINE_LIMIT = 1800.0


def command(profile: str) -> list[str]:
    """The QA safety suite against the in-process emulator, stopping at the first failure."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        SUITE,
        "--itb-target=inproc",
        f"--itb-profile={profile}",
        "-x",
    ]


@dataclass(frozen=True)
class Mutant:
    """One edit: the lines ``old`` of ``file`` from ``line`` on, replaced by ``new`` (ends kept)."""

    file: str
    line: int
    column: int  # where the mutated node starts
    operator: str  # mutmut's, e.g. swap_op, number, arg_removal; return_none
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def key(self) -> str:
        """Stable across samples and runs while the file's lines stay where they are."""
        return f"{self.file}:{self.line} {self.operator}: {_shown(self.old)} -> {_shown(self.new)}"

    @property
    def id(self) -> str:
        """A short name for the key."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:8]

    def apply(self, source: str) -> str:
        """``source`` with the edit made; ValueError unless ``old`` is still at ``line``."""
        lines = source.splitlines(keepends=True)
        at = self.line - 1
        if tuple(lines[at : at + len(self.old)]) != self.old:
            raise ValueError(f"{self.key}: the source has changed")
        return "".join([*lines[:at], *self.new, *lines[at + len(self.old) :]])


def _shown(lines: tuple[str, ...]) -> str:
    return " / ".join(line.strip() for line in lines) or "(nothing)"


def operator_return_none(node: cst.Return) -> Iterable[cst.Return]:
    """``return x`` -> ``return None`` (mutmut 3 has no such operator)."""
    if node.value is not None and not (isinstance(node.value, cst.Name) and node.value.value == "None"):
        yield node.with_changes(value=cst.Name("None"))


OPERATORS: OPERATORS_TYPE = [*mutation_operators, (cst.Return, operator_return_none)]
Found = tuple[cst.CSTNode, cst.CSTNode, str, int]


class _Visitor(MutationVisitor):
    """mutmut's visitor, recording each mutation's operator and column; into decorated functions, not into
    ``__all__`` or a string of words."""

    def __init__(self, ignored: IgnoredCode) -> None:
        super().__init__(OPERATORS, ignored)
        self.found: list[Found] = []

    def _create_mutations(self, node: cst.CSTNode) -> None:
        position = self.get_metadata(PositionProvider, node, None)
        for kind, operator in self._operators:
            if isinstance(node, kind):
                for mutated in operator(node):
                    if not self._removes_ignored_code(node, mutated):
                        name = operator.__name__.removeprefix("operator_")
                        self.found.append((node, mutated, name, position.start.column if position else 0))

    def _skip_node_and_children(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.SimpleString) and any(c.isspace() for c in str(node.evaluated_value)):
            return True  # words, for people (a reason, a message, a log entry's detail)
        if isinstance(node, cst.Assign | cst.AnnAssign):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            if any(isinstance(t, cst.Name) and t.value == "__all__" for t in targets):
                return True
        if isinstance(node, cst.FunctionDef) and node.decorators:  # (its decorators are still skipped)
            position = self.get_metadata(PositionProvider, node, None)
            pragma = position is not None and position.start.line in self._ignored_node_lines
            return pragma or node.name.value in NEVER_MUTATE_FUNCTION_NAMES
        return bool(super()._skip_node_and_children(node))


@functools.cache
def patterns() -> tuple[re.Pattern[str], ...]:
    """[tool.mutmut] do_not_mutate_patterns: a line matching one is not mutated."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    return tuple(re.compile(p) for p in config.get("do_not_mutate_patterns", []))


def mutants_of(file: str, source: str) -> list[Mutant]:
    """Every mutant of one file, sorted by line, column and operator (a mutant found twice, once)."""
    wrapper = MetadataWrapper(cst.parse_module(source))
    pragmas = PragmaVisitor(file)
    wrapper.visit(pragmas)
    lines = source.splitlines(keepends=True)
    by_pattern = {n for n, line in enumerate(lines, 1) if any(p.search(line) for p in patterns())}
    visitor = _Visitor(IgnoredCode(pragmas.no_mutate_lines, pragmas.ignore_node_lines, by_pattern))
    wrapper.visit(visitor)
    module = wrapper.module
    spans = wrapper.resolve(WhitespaceInclusivePositionProvider)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    found = []
    for node, mutated, operator, column in visitor.found:
        span = spans[node]
        a = starts[span.start.line - 1] + span.start.column
        b = starts[span.end.line - 1] + span.end.column
        code = module.code_for_node(node)
        # libcst renders a node that spans lines as if it were not indented: indent it as its statement is
        indents = [
            indent for indent in _indents(lines, span.start.line) if code.replace("\n", indent) == source[a:b]
        ]
        if indents:  # splice the node's new code in
            text = source[:a] + module.code_for_node(mutated).replace("\n", indents[0]) + source[b:]
        else:  # render the whole module
            text = cast(cst.Module, deep_replace(module, node, mutated)).code
        new = text.splitlines(keepends=True)
        head = 0
        while head < min(len(lines), len(new)) and lines[head] == new[head]:
            head += 1
        tail = 0
        while tail < min(len(lines), len(new)) - head and lines[-1 - tail] == new[-1 - tail]:
            tail += 1
        if head < len(lines) - tail or head < len(new) - tail:
            old_part, new_part = tuple(lines[head : len(lines) - tail]), tuple(new[head : len(new) - tail])
            found.append(Mutant(file, head + 1, column, operator, old_part, new_part))
    found.sort(key=lambda m: (m.line, m.column, m.operator, m.new))
    unique: dict[tuple[int, tuple[str, ...], tuple[str, ...]], Mutant] = {}
    for m in found:
        unique.setdefault((m.line, m.old, m.new), m)
    return list(unique.values())


def _indents(lines: list[str], line: int) -> list[str]:
    """What may follow a line break inside a node starting on ``line``: no indent, or a line's up there."""
    found = ["\n"]
    for text in reversed(lines[max(0, line - 30) : line]):
        indent = "\n" + text[: len(text) - len(text.lstrip(" \t"))]
        if indent not in found:
            found.append(indent)
    return found


@functools.cache
def _cached(file: str, source: str) -> tuple[Mutant, ...]:
    return tuple(mutants_of(file, source))


def source_files() -> list[str]:
    """The pump side's files, relative to the root, sorted."""
    return sorted({p.relative_to(ROOT).as_posix() for g in SOURCES for p in ROOT.glob(g)})


def all_mutants() -> list[Mutant]:
    """Every mutant of the pump side, in order of file, line, column and operator."""
    return [m for f in source_files() for m in _cached(f, (ROOT / f).read_text(encoding="utf-8"))]


def sample(mutants: Sequence[Mutant], n: int, seed: int) -> list[Mutant]:
    """``n`` of ``mutants`` (all if fewer), the same for the same seed, in the mutants' order."""
    order = {m: i for i, m in enumerate(mutants)}
    return sorted(random.Random(seed).sample(list(mutants), min(n, len(mutants))), key=order.__getitem__)


def equivalents(path: Path = SURVIVORS) -> dict[str, str]:
    """The mutants no pump test could tell from the original: key -> reason."""
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("equivalent", [])
    marked: dict[str, str] = {}
    for entry in entries:
        if set(entry) != {"key", "reason"} or not entry["reason"].strip() or entry["key"] in marked:
            raise ValueError(f"{path.name}: each entry needs a new key and a reason: {entry}")
        marked[entry["key"]] = entry["reason"]
    return marked


@dataclass(frozen=True)
class Result:
    """What the suite made of one mutant."""

    mutant: Mutant
    outcome: str  # killed, survived, equivalent
    run: Run


def judge(tree: Path, mutant: Mutant, profile: str, timeout: float, marked: dict[str, str]) -> Result:
    """Run the suite on ``tree`` with ``mutant`` applied (and a fresh example database)."""
    shutil.rmtree(tree / ".hypothesis", ignore_errors=True)
    with edited(tree, mutant.file, mutant.apply):
        result = run(command(profile), tree, environment(tree), timeout)
    outcome = "killed" if result.status != 0 else "equivalent" if mutant.key in marked else "survived"
    detail = "" if result.status == 0 else f"[{result.status}] {result.detail}"
    print(
        f"{mutant.id} {outcome:<10} {result.seconds:6.1f}s {mutant.key[:100]} {detail[:80]}", file=sys.stderr
    )
    return Result(mutant, outcome, result)


def report(results: list[Result], marked: dict[str, str]) -> dict[str, object]:
    """Print the table, the survivors and the score; return the counts."""
    kinds = ("sampled", "killed", "survived", "equivalent", "timeouts")
    per_file: dict[str, Counter[str]] = {}
    for r in results:
        counts = per_file.setdefault(r.mutant.file, Counter())
        counts.update(["sampled", r.outcome] + (["timeouts"] if r.run.status is None else []))
    total: Counter[str] = sum(per_file.values(), Counter())

    def score(c: Counter[str]) -> float:
        scored = c["sampled"] - c["equivalent"]
        return round(c["killed"] / scored, 3) if scored else 1.0

    print(f"{'file':<36}" + "".join(f"{k:>11}" for k in kinds) + f"{'score':>7}")
    for name, c in [*sorted(per_file.items()), ("all", total)]:
        row = "".join(f"{c[k]:>11}" for k in kinds)
        print(f"{name.removeprefix('src/itbproto/'):<36}{row}{score(c):>7}")
    survivors = [r.mutant for r in results if r.outcome == "survived"]
    if survivors:
        print(f"\nsurvivors ({len(survivors)}): a pump test to write, or an entry in {SURVIVORS.name}")
        for m in survivors:
            print(f"  {m.file}:{m.line} {m.operator} ({m.id})")
            print("".join(f"    - {line.strip()}\n" for line in m.old), end="")
            print("".join(f"    + {line.strip()}\n" for line in m.new), end="")
            print(f"    key = {json.dumps(m.key)}")
    wrongly = [r.mutant.key for r in results if r.outcome == "killed" and r.mutant.key in marked]
    for key in wrongly:
        print(f"marked equivalent but killed (drop the entry): {key}")
    print(f"\nscore: {score(total)} ({total['killed']} killed of {total['sampled'] - total['equivalent']})")
    return {
        **{k: total[k] for k in ("killed", "survived", "equivalent", "timeouts", "sampled")},
        "score": score(total),
        "per_file": {name: {k: c[k] for k in kinds} for name, c in sorted(per_file.items())},
        "survivors": [m.id for m in survivors],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=300, help="how many mutants to run (default 300)")
    parser.add_argument("--seed", type=int, default=23, help="which ones (default 23)")
    parser.add_argument("--jobs", type=int, default=2, help="workers, each with its own copy (default 2)")
    parser.add_argument("--profile", choices=("quick", "thorough"), default="quick", help="--itb-profile")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default 3x the unmutated run)")
    parser.add_argument("--only", nargs="+", metavar="KEY", help="run these mutants (keys or ids), no sample")
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    args = parser.parse_args(argv)
    everything = all_mutants()
    marked = equivalents()
    for key in sorted(set(marked) - {m.key for m in everything}):
        print(f"{SURVIVORS.name}: no such mutant (moved or gone): {key}", file=sys.stderr)
    if args.only:
        named = {m.key: m for m in everything} | {m.id: m for m in everything}
        unknown = [k for k in args.only if k not in named]
        if unknown:
            parser.error(f"no such mutants: {unknown}")
        chosen = list({named[k]: None for k in args.only})
    else:
        chosen = sample(everything, args.sample, args.seed)
    if args.list:
        for m in chosen:
            print(f"{m.id}  {m.key}")
        print(f"{len(chosen)} of {len(everything)} mutants in {len(source_files())} files (seed {args.seed})")
        return 0
    start = time.perf_counter()
    timeouts: list[tuple[float, float]] = []  # each worker's (baseline, timeout)

    def setup(tree: Path) -> Callable[[Mutant], Result]:
        """The unmutated suite must pass; timed in each worker at once, under the load the mutants meet."""
        baseline = run(command(args.profile), tree, environment(tree), BASELINE_LIMIT)
        if baseline.status != 0:
            raise RuntimeError(f"the unmutated suite fails ({baseline.status}): {baseline.detail}")
        timeout = args.timeout or 3 * baseline.seconds
        timeouts.append((baseline.seconds, timeout))
        print(f"baseline {baseline.seconds:.1f}s, timeout {timeout:.1f}s", file=sys.stderr, flush=True)
        return lambda m: judge(tree, m, args.profile, timeout, marked)

    with tempfile.TemporaryDirectory(prefix="qa-mutation-") as tmp:
        base = Path(tmp)  # one snapshot of the tree for every worker (the suite may be edited meanwhile)
        copy_tree(base)
        for m in chosen:  # fail before any run if an edit no longer applies
            m.apply((base / m.file).read_text(encoding="utf-8"))
        results = run_workers(chosen, args.jobs, setup, prefix="qa-mutation-", source=base)
    summary = report(results, marked)
    baseline, timeout = (round(max(t), 1) for t in zip(*timeouts, strict=True))
    seconds = {"seconds": round(time.perf_counter() - start, 1), "baseline_seconds": baseline}
    extra = {"mutants": len(everything), "seed": args.seed, "profile": args.profile}
    print(json.dumps({**summary, **seconds, "timeout_seconds": timeout, **extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

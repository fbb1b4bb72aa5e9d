"""The mutation score of `make mutation`, per package, from mutmut's results in mutants/.

A mutant is *killed* when a test failed (or timed out: an endless loop is caught too), *survived* when every
test passed, *untested* when no test ran its code. A survivor is *equivalent* when no test can tell it from
the original: one of the classes in bench/mutation_survivors.toml takes it, each with its reason. The score
is killed / (killed + survived + untested). Prints a table, every survivor not shown equivalent with its
change, and, as its last line, one JSON object.
"""

from __future__ import annotations

import ast
import difflib
import functools
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLED = {1, 3, 36, 24, -24, 152, 255, -9, -11}  # failed, or timed out
SURVIVED = {0}
UNTESTED = {5, 33}


def results(mutants: Path) -> dict[str, int | None]:
    """Every mutant's exit code (None: not run)."""
    codes: dict[str, int | None] = {}
    for meta in sorted(mutants.rglob("*.meta")):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


@functools.cache
def functions(path: Path) -> dict[str, list[str]]:
    """The body lines of every function in a file."""
    source = path.read_text()
    lines = source.splitlines()
    return {
        node.name: lines[node.lineno : node.end_lineno]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def changes(mutants: Path, mutant: str) -> tuple[list[str], list[str]]:
    """The original's lines and the mutant's lines that differ (from mutmut's trampolined copy)."""
    module, function = mutant.rsplit(".", 1)
    bodies = functions(mutants / "src" / (module.replace(".", "/") + ".py"))
    original = bodies.get(function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", [])
    changed = bodies.get(function, [])
    diff = list(difflib.unified_diff(original, changed, lineterm="", n=0))[2:]
    return [d[1:] for d in diff if d.startswith("-")], [d[1:] for d in diff if d.startswith("+")]


def equivalence(
    mutant: str, removed: list[str], added: list[str], classes: list[dict[str, str]]
) -> str | None:
    """Why the mutant is equivalent, if one of the classes in mutation_survivors.toml takes it."""
    for c in classes:
        if not mutant.startswith(c["function"]) or not removed or not added:
            continue
        if all(re.search(c["original"], line) for line in removed) and all(
            re.search(c["mutant"], line) for line in added
        ):
            return c["why"]
    return None


def package(mutant: str) -> str:
    """itbproto.core.safety.rules.dose.x_rolling_dose__mutmut_3 -> safety"""
    return mutant.split(".")[1]


def main() -> int:
    codes = results(ROOT / "mutants")
    if not codes:
        print("no results in mutants/: run `make mutation`", file=sys.stderr)
        return 1
    classes = tomllib.loads((ROOT / "bench" / "mutation_survivors.toml").read_text())["equivalent"]
    equivalent: dict[str, str] = {}
    survivors: dict[str, tuple[list[str], list[str]]] = {}
    for mutant, code in codes.items():
        if code in SURVIVED:
            removed, added = changes(ROOT / "mutants", mutant)
            reason = equivalence(mutant, removed, added, classes)
            if reason:
                equivalent[mutant] = reason
            else:
                survivors[mutant] = (removed, added)
    table: dict[str, Counter[str]] = {}
    for mutant, code in codes.items():
        kind = (
            "killed"
            if code in KILLED
            else "equivalent"
            if code in SURVIVED and mutant in equivalent
            else "survived"
            if code in SURVIVED
            else "untested"
            if code in UNTESTED
            else "not run"
        )
        table.setdefault(package(mutant), Counter())[kind] += 1
    total: Counter[str] = sum(table.values(), Counter())
    kinds = ("killed", "survived", "equivalent", "untested", "not run")
    print(f"{'package':<10}" + "".join(f"{k:>12}" for k in kinds) + f"{'score':>8}")
    figures = {}
    for name, counts in [*sorted(table.items()), ("all", total)]:
        judged = counts["killed"] + counts["survived"] + counts["untested"]
        score = round(100 * counts["killed"] / judged, 1) if judged else 0.0
        figures[name] = {**{k: counts[k] for k in kinds}, "score_pct": score}
        print(f"{name:<10}" + "".join(f"{counts[k]:>12}" for k in kinds) + f"{score:>7}%")
    for reason, count in Counter(equivalent.values()).most_common():
        print(f"equivalent ({count}): {reason}")
    for mutant, (removed, added) in sorted(survivors.items()):
        print(f"survived: {mutant}")
        for line in removed:
            print(f"    - {line.strip()}")
        for line in added:
            print(f"    + {line.strip()}")
    print(json.dumps({"mutation": figures, "goal_pct": 90}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

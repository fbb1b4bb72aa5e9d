"""Run a test command against edited copies of the tree: the machinery of the mutant benches.

Each worker copies the tree once into a temporary directory and checks that the copy's packages are the
ones imported (PYTHONPATH puts the copy ahead of the editable install). For each mutant it writes the edited
file, runs the command in the copy and restores the file. bench/clinical_mutants.py and
bench/qa_mutation.py say what a mutant is, which command judges it and what its outcome means.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
#: what the tests need from the tree (the venv, git and caches stay behind)
COPIED = (
    *("src", "emulator", "tests", "specs", "bench", "examples", "docs"),
    *("pyproject.toml", "mkdocs.yml", "README.md", "CHANGELOG.md", "CONTRIBUTING.md", "LICENSE", "Makefile"),
)
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", ".mypy_cache")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Run:
    """One run of a command: its exit status (None: timed out), how long it took, and a line to show."""

    status: int | None
    seconds: float
    detail: str  # the first FAILED/ERROR line, else the output's last line; "timeout"


def copy_tree(dest: Path, source: Path = ROOT) -> None:
    """What the tests need from ``source``, into ``dest`` (no caches)."""
    for name in COPIED:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=CACHES)
        elif src.exists():
            shutil.copy2(src, dest / name)


def environment(tree: Path, **extra: str) -> dict[str, str]:
    """The copy's code first on the path; no bytecode written (a restored file is never read from a stale
    cache); and ``extra``."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree / 'emulator'}"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, **extra}


def run(command: Sequence[str], tree: Path, env: Mapping[str, str], timeout: float) -> Run:
    """Run ``command`` in ``tree``; on timeout its whole process group is killed."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=tree,
        env=env,
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
        return Run(None, time.perf_counter() - start, "timeout")
    failed = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return Run(proc.returncode, time.perf_counter() - start, (failed or out.splitlines()[-1:] or [""])[0])


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


@contextmanager
def edited(tree: Path, file: str, edit: Callable[[str], str]) -> Iterator[None]:
    """``file`` of ``tree`` rewritten by ``edit`` for the duration, then restored."""
    path = tree / file
    original = path.read_text(encoding="utf-8")
    path.write_text(edit(original), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(original, encoding="utf-8")


def run_workers(
    items: Sequence[T],
    jobs: int,
    setup: Callable[[Path], Callable[[T], R]],
    prefix: str = "mutants-",
    source: Path = ROOT,
) -> list[R]:
    """Judge ``items`` on ``jobs`` workers (at most one per item). Each copies ``source`` to a temporary
    directory, checks the copy and calls ``setup`` with it for its judge; the judges take items off one
    queue. Returns the results in the order of ``items``; raises the first worker's error, if any."""
    work: queue.Queue[tuple[int, T]] = queue.Queue()
    for entry in enumerate(items):
        work.put(entry)
    results: dict[int, R] = {}
    errors: list[Exception] = []

    def worker() -> None:
        try:
            with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
                tree = Path(tmp)
                copy_tree(tree, source)
                check_copy(tree)
                judge = setup(tree)
                while True:
                    try:
                        index, item = work.get_nowait()
                    except queue.Empty:
                        return
                    results[index] = judge(item)
        except Exception as exc:  # reported by the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(jobs, len(items))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [results[i] for i in sorted(results)]

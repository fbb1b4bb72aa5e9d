"""The packaged QA suite as QA runs it: `pytest --pyargs itbproto.qa ...` in a directory outside this
repository. Against `itbemu serve --tcp` in its own process it passes; against each seeded defect (in-process,
where the quick profile takes seconds; and one served over TCP by `itbemu serve --defect`) it fails, and the
report names what broke."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import itbemu_serve, run_qa_suite
from itbemu.defects import ALLOW, DEFECTS

#: what the oracle reports for each seeded defect
CAUGHT_BY = {
    "ignore-daily-limit": "DOSE-002",
    "accept-overfill": "REFILL-001",
    "skip-low-reservoir-alarm": "RES-001",
    "apply-retry-twice": "TXN",
    "accept-replay": "REPLAY",
    "path-at-new-concentration": "DOSE-001",
    "suspend-unacknowledged": "STOP-002",
}


def qa(tmp_path: Path, *options: str) -> tuple[int, dict[str, Any]]:
    """Run the packaged suite from a directory of its own; its exit status and JSON report."""
    return run_qa_suite(
        tmp_path / "qa", tmp_path / "report.json", *options, f"--itb-db={tmp_path / 'examples'}"
    )


def served(tmp_path: Path, defect: str | None = None) -> tuple[int, dict[str, Any]]:
    """The suite against `itbemu serve --tcp` (with a seeded ``defect``) in its own process."""
    seeded = ["--defect", defect] if defect else []
    with itbemu_serve("--tcp", "127.0.0.1:0", "--speed", "600", *seeded, env={ALLOW: "1"}) as served:
        assert "on tcp://" in served.first_line
        return qa(tmp_path, f"--itb-target={served.first_line.split()[-1]}")


def violated(result: dict[str, Any]) -> set[str]:
    return {rule_id for rule_id, row in result["rules"].items() if row["violations"]}


def test_the_suite_passes_against_the_correct_emulator_over_tcp(tmp_path: Path) -> None:
    status, result = served(tmp_path)
    assert violated(result) == set()
    assert status == 0
    assert result["total_steps"] > 50
    assert result["rules"]["DOSE-001"]["checked"] > 0
    assert "tests" in result["rules"]["DOSE-001"]  # the matrix, from the collected items


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_the_quick_profile_catches_every_seeded_defect(tmp_path: Path, defect: str) -> None:
    status, result = qa(tmp_path, "--itb-target=inproc", f"--itb-defect={defect}")
    assert status == 1
    assert CAUGHT_BY[defect] in violated(result)
    assert result["reproducers"]  # the steps that show it: a probe's, or hypothesis' script to replay


def test_a_defect_served_over_tcp_is_caught(tmp_path: Path) -> None:
    status, result = served(tmp_path, "accept-replay")
    assert status == 1
    assert violated(result) == {"REPLAY"}


def test_a_defect_needs_the_test_build_switch() -> None:
    env = {k: v for k, v in os.environ.items() if k != ALLOW}
    done = subprocess.run(
        [sys.executable, "-m", "itbemu", "serve", "--tcp", "127.0.0.1:0", "--defect", "accept-replay"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert ALLOW in done.stderr

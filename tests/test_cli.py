"""The itbproto command."""

from __future__ import annotations

import pytest

from conftest import ROOT
from itbproto.cli import main
from itbproto.wire import SetRate, encode


def test_demo_runs_a_whole_session(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--mtu", "23"]) == 0
    out = capsys.readouterr().out
    assert "session closed." in out
    assert "read-back matches what was confirmed" in out
    assert "TITR-001" in out  # the second titration step is refused
    assert "acknowledge the withdrawal risk" in out
    for name in (
        "Hello",
        "StagePrescription",
        "CommitPrescription",
        "BolusStarted",
        "AlarmNotify",
        "RefillConfirm",
    ):
        assert name in out


def test_decode_prints_fields_in_display_units(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", encode(SetRate(rate_ul_day=880), txn=9).hex()]) == 0
    out = capsys.readouterr().out
    assert "SetRate" in out
    assert "0.88 mL/day" in out


def test_decode_reports_bad_frames(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "0100"]) == 1
    assert "TruncatedFrameError" in capsys.readouterr().err


def test_specs_check_passes_on_the_repository() -> None:
    assert main(["specs", "--root", str(ROOT)]) == 0


def test_catalog_lists_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 0
    assert "0x21  StatusReport" in capsys.readouterr().out


def test_rules_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "-v"]) == 0
    out = capsys.readouterr().out
    assert "DOSE-001" in out
    assert "enforced on:" in out


def test_rules_matrix_is_the_committed_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--matrix", "--root", str(ROOT)]) == 0
    assert capsys.readouterr().out == (ROOT / "specs" / "rule-matrix.md").read_text(encoding="utf-8")


def test_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert "itb-20" in out
    assert "itb-40" in out

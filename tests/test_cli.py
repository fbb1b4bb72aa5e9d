"""The itbproto command: every subcommand, its help, and its failures (one line, never a traceback)."""

from __future__ import annotations

import io
import random
import subprocess
import sys

import pytest

from conftest import ROOT
from itbproto.cli import build_parser, main, parse_hex
from itbproto.core.wire import SetRate, encode

FRAME = encode(SetRate(rate_ul_day=880), txn=9)


def test_demo_runs_a_whole_session_and_shows_every_frame(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--mtu", "23"]) == 0
    out = capsys.readouterr().out
    assert "session closed." in out
    assert "read-back matches what was confirmed" in out
    # what the programmer refuses on the way: each step of the therapy path has its rule
    for rule in ("BOL-002", "SCREEN-001", "TITR-001", "TITR-002", "FLOW-001", "MRI-002", "STOP-001"):
        assert f"{rule}:" in out, rule
    for name in (
        "Hello",
        "SetPatientRecord",
        "RecordScreeningResponse",
        "RecordProcedure",
        "StagePrescription",
        "CommitPrescription",
        "BolusStarted",
        "AlarmNotify",
        "RefillConfirm",
        "MriBegin",
        "MriEnd",
    ):
        assert name in out
    hexes = [line for line in out.splitlines() if set(line.strip()) <= set("0123456789abcdef")]
    assert max(len(line) for line in out.splitlines() if line not in hexes) <= 100  # text wrapped, never cut


def test_every_frame_the_demo_prints_decodes_pasted_line_by_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 25: a frame's hex was wrapped at 94 characters, and a line pasted alone did not decode."""
    main(["demo", "--mtu", "0"])
    lines = capsys.readouterr().out.splitlines()
    frames = [line for line in lines if line.strip() and set(line.strip()) <= set("0123456789abcdef")]
    assert len(frames) > 40
    for frame in frames:
        assert main(["decode", frame]) == 0


def test_decode_prints_fields_in_display_units(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", FRAME.hex()]) == 0
    out = capsys.readouterr().out
    assert "SetRate" in out
    assert "0.88 mL/day" in out


@pytest.mark.parametrize(
    "text",
    [
        FRAME.hex(),
        "0x" + FRAME.hex(),
        " ".join(f"{b:02x}" for b in FRAME),
        ":".join(f"{b:02X}" for b in FRAME),
    ],
)
def test_decode_takes_hex_as_people_paste_it(text: str) -> None:
    assert parse_hex(text) == FRAME


def test_decode_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{FRAME.hex()}\n\n0x{FRAME.hex()}\n"))
    assert main(["decode"]) == 0
    assert capsys.readouterr().out.count("SetRate") == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0100", "TruncatedFrameError"),
        ("abc", "odd number"),
        ("zz", "not hex"),
        (FRAME.hex()[:-2] + "00", "BadCrcError"),
    ],
)
def test_decode_says_what_is_wrong(text: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", text]) == 1
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


def test_decode_of_random_bytes_as_hex_names_the_bytes_given(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 25: 40 random bytes said "expected 1039 bytes, got 58531": neither was the 40 given."""
    for seed in range(20):
        text = random.Random(seed).randbytes(40).hex()
        assert main(["decode", text]) == 1
        err = capsys.readouterr().err
        assert "40 bytes" in err, err
        assert len(err.splitlines()) == 1


def test_decode_of_raw_binary_on_standard_input_is_one_clear_line() -> None:
    """Issue 25: raw bytes piped in were echoed back garbled; decode takes hex text and says so."""
    done = subprocess.run(
        [sys.executable, "-m", "itbproto", "decode"],
        input=random.Random(7).randbytes(300) + b"\n" + bytes(range(128, 256)),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    err = done.stderr.decode("ascii")  # nothing of the binary is echoed
    assert "not hex" in err
    assert "Traceback" not in err
    assert all(line.startswith("itbproto decode:") for line in err.splitlines()), err


def test_specs_check_passes_on_the_repository() -> None:
    assert main(["specs", "--root", str(ROOT)]) == 0


def test_specs_outside_a_checkout_is_one_clear_line(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["specs", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not an itbproto checkout" in err
    assert err.count("\n") == 1


def test_catalog_lists_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert "0x21  StatusReport" in out
    assert "changes delivery" in out


def test_rules_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "-v"]) == 0
    out = capsys.readouterr().out
    assert "DOSE-001" in out
    assert "enforced on:" in out


def test_rules_matrix_is_the_committed_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--matrix", "--root", str(ROOT)]) == 0
    assert capsys.readouterr().out == (ROOT / "specs" / "rule-matrix.md").read_text(encoding="utf-8")


def test_rules_matrix_without_tests_does_not_claim_rules_are_untested(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "--matrix", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "**none**" not in out
    assert "source checkout" in out


def test_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert "itb-20" in out
    assert "itb-40" in out


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():  # type: ignore[union-attr]
        assert command.description, name
        for action in command._actions:
            assert action.help, f"{name} {action.dest}"


def test_a_closed_pipe_is_not_a_traceback() -> None:
    """`itbproto demo | head` exits quietly."""
    run = subprocess.run(
        f"{sys.executable} -m itbproto.cli demo | head -2",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert "Traceback" not in run.stderr
    assert len(run.stdout.splitlines()) == 2

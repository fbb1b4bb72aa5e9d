"""A user's first hour with the remote commands (issue 25): against `itbemu serve` in its own process,
every answer is what a clinician or a script needs; every failure is one line that changes nothing."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, free_port, itbemu_serve
from itbemu.cli import build_parser as itbemu_parser
from itbproto.cli import build_parser
from itbproto.cli import main as itbproto_main
from itbproto.core.therapy import SCALE
from itbproto.core.therapy.schedule import daily_dose_scaled
from itbproto.io.specfiles import load_prescription
from itbproto.units import Dose, Rounding, divide

PLAN = str(ROOT / "examples" / "prescriptions" / "continuous-400ug.toml")
FLEX = ROOT / "examples" / "prescriptions" / "flex-4-step.toml"


def served(*options: str) -> Iterator[list[str]]:
    with itbemu_serve("--tcp", "127.0.0.1:0", *options) as pump:
        yield ["--target", f"tcp://127.0.0.1:{pump.first_line.rsplit(':', 1)[1].strip()}"]


@pytest.fixture
def itb40() -> Iterator[list[str]]:
    """A fresh itb-40 (40 mL) pump: no profile on the command line must be needed for it."""
    yield from served("--profile", "itb-40")


@pytest.fixture
def pump() -> Iterator[list[str]]:
    """A fresh itb-20 pump whose motor stalls a minute in (a critical alarm to acknowledge)."""
    yield from served("--faults", str(ROOT / "examples" / "faults" / "motor-stall.toml"), "--speed", "60")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = itbproto_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def status(capsys: pytest.CaptureFixture[str], target: list[str]) -> dict[str, object]:
    code, out, _ = run(capsys, "status", *target, "--json")
    assert code == 0
    return dict(json.loads(out))


def test_status_takes_the_profile_the_pump_reports(
    itb40: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "cannot response_lost in state connecting: no request is waiting for a reply"."""
    assert status(capsys, itb40)["reservoir_ul"] == 40_000
    code, out, err = run(capsys, "status", *itb40, "--profile", "itb-20")
    assert code == 2
    assert err.count("\n") == 1
    assert "itb-40" in err
    assert "itb-20" in err
    assert out == ""


def test_program_without_an_answer_is_refused_and_changes_nothing(
    itb40: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: an EOFError traceback when standard input was not a terminal."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "program", *itb40, "--prescription", PLAN)
    assert code == 2
    assert "no answer" in err
    assert "--yes" in err
    assert "Traceback" not in err
    after = status(capsys, itb40)
    assert (after["prescription_id"], after["mode"]) == (0, "STOPPED")


@pytest.mark.parametrize(
    ("answer", "confirmed"), [("y\n", True), ("YES\n", True), ("no\n", False), ("\n", False)]
)
def test_program_confirms_on_y_or_yes_only(
    answer: str,
    confirmed: bool,
    itb40: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: "y" was refused as not confirmed."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    code, _, err = run(capsys, "program", *itb40, "--prescription", PLAN, "--json")
    assert code == (0 if confirmed else 2), err
    assert (status(capsys, itb40)["mode"] == "INFUSING") is confirmed
    if not confirmed:
        assert "not confirmed" in err


def test_the_summary_shows_what_a_clinician_confirms(
    itb40: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: only "new daily dose: 400000 ng"."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    flex = tmp_path / "flex.toml"  # the example's flex schedule, at the concentration the pump holds
    flex.write_text(FLEX.read_text().replace("concentration_ug_ml = 2000", "concentration_ug_ml = 500"))
    _, _, summary = run(capsys, "program", *itb40, "--prescription", str(flex))
    for expected in (
        "itb-40",  # which pump
        "500 µg/mL",
        "00:00",
        "07:00  220 µL/day  (110 µg/day)",  # each step of the schedule, its dose
        "22:00",
        f"{Dose(divide(daily_dose_scaled(load_prescription(flex)), SCALE, Rounding.UP))}/day",  # the pump's
        "600 µg",  # the maximum in any 24 h
        "50 µg",  # the largest bolus
        "5 µL (2.5 µg) over 10 min, 4 h apart, 3 a day",  # the patient's bolus
    ):
        assert expected in summary, (expected, summary)


def test_pair_json_and_alarms_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Before: `pair --json` printed text; `alarms --json` with none printed nothing."""
    port = free_port()
    with itbemu_serve("--tcp", f"127.0.0.1:{port}", "--pin", "493817", "--serial", "EMU-J"):
        target = ["--target", f"tcp://127.0.0.1:{port}"]
        keystore = str(tmp_path / "keys.json")
        code, out, _ = run(
            capsys, "pair", *target, "--pin", "493817", "--keystore", keystore, "--serial", "EMU-J", "--json"
        )
        assert code == 0
        assert json.loads(out) == {"serial": "EMU-J", "role": "clinician", "key_id": 1, "keystore": keystore}
        code, out, _ = run(capsys, "alarms", *target, "--json")
        assert (code, json.loads(out)) == (0, [])


def test_alarms_acknowledged_twice_is_not_an_error(
    pump: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(100):  # the stall comes a minute of device time (a second) in
        code, out, _ = run(capsys, "alarms", *pump, "--json")
        if json.loads(out):
            break
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.1)"], check=True)
    for _ in range(2):
        code, out, err = run(capsys, "alarms", *pump, "--acknowledge", "--json")
        assert code == 0, err
        (alarm,) = json.loads(out)
        assert (alarm["code"], alarm["acknowledged"]) == ("MOTOR_STALL", True)


def test_the_log_has_a_header_for_every_column(pump: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "log", *pump)
    assert code == 0
    header, first = out.splitlines()[:2]
    assert header.split() == ["#", "at", "(s)", "event", "txn", "value", "detail"]
    assert "BOOT" in first


def test_status_labels_agree_with_their_values(pump: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `reservoir_ul: 20 mL`, `battery_days: 3637 day`."""
    code, out, _ = run(capsys, "status", *pump)
    assert code == 0
    rows = dict(line.strip().split(": ", 1) for line in out.splitlines())
    assert rows["reservoir_ul"] == "20000 µL (20 mL)"
    assert rows["battery_days"].endswith(" days")


@pytest.mark.parametrize("parser", [build_parser(), itbemu_parser()], ids=["itbproto", "itbemu"])
def test_every_subcommand_describes_itself(parser: argparse.ArgumentParser) -> None:
    """Before: every remote subcommand's --help ended with a fragment of the module's docstring; itbemu's
    had none."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands: dict[str, argparse.ArgumentParser] = action.choices
    descriptions = {name: sub.description or "" for name, sub in commands.items()}
    assert all(descriptions.values())
    assert len(set(descriptions.values())) == len(descriptions)
    assert not any("Each command opens" in text or "``" in text for text in descriptions.values())


@pytest.mark.parametrize(
    ("target", "env", "says"),
    [
        ("ble://NOPE", {"ITBPROTO_BLE_HCI": ""}, "ITBPROTO_BLE_HCI=tcp-client:"),  # no adapter here
        ("ble://NOPE", {"ITBPROTO_BLE_HCI": "tcp-client:127.0.0.1:1"}, "itbemu serve --ble"),  # a dead hub
        ("ble://NOPE", {"ITBPROTO_BLE_HCI": "bogus"}, "ITBPROTO_BLE_HCI=bogus"),
        ("tcp://127.0.0.1:1", {}, "cannot reach"),
        ("udp://x", {}, "tcp://HOST:PORT"),
    ],
)
def test_an_unreachable_target_is_one_line_that_says_what_to_do(
    target: str, env: dict[str, str], says: str
) -> None:
    """Before: "[Errno 2] No such file or directory", "[Errno 111] Connect call failed"."""
    done = subprocess.run(
        [sys.executable, "-m", "itbproto", "status", "--target", target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**_environment(), **env},
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr
    assert "Errno" not in done.stderr


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "ITBPROTO_BLE_HCI"}


def test_a_pump_served_with_a_site_policy_refuses_what_it_tightens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`itbemu serve --policy`: the pump is built with the site's policy (the programmer here has the
    catalog's, so the pump's own check is what refuses); a looser policy is refused at start (POLICY-001)."""
    strict = tmp_path / "strict.toml"
    strict.write_text('[policy]\n"BOL-001.absolute_max_bolus_ng" = 20000\n')
    for pump in served("--policy", str(strict)):
        assert run(capsys, "program", *pump, "--prescription", PLAN, "--yes")[0] == 0
        code, _, err = run(capsys, "bolus", *pump, "--volume-ul", "60", "--duration-s", "3600")  # 30 µg
        assert code == 2
        assert "BOL-001" in err
        assert run(capsys, "bolus", *pump, "--volume-ul", "40", "--duration-s", "3600")[0] == 0  # 20 µg
    loose = tmp_path / "loose.toml"
    loose.write_text('[policy]\n"BOL-001.absolute_max_bolus_ng" = 900000\n')
    done = subprocess.run(
        [sys.executable, "-m", "itbemu", "serve", "--tcp", "127.0.0.1:0", "--policy", str(loose)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "POLICY-001" in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr

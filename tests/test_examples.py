"""The BLE example scripts (and the CLI on a ble:// target), as a developer runs them: `itbemu serve --ble
tcp-server:...` in one process, each script in another with only ``ITBPROTO_BLE_HCI`` set (plain bleak finds
our backend through the .pth hook)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import ROOT, free_port, itbemu_serve
from itbemu.ble import pump_address

PIN = "493817"
Run = Callable[..., str]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ble") / "pump.btsnoop"


@pytest.fixture(scope="module")
def radio(capture: Path) -> Iterator[dict[str, str]]:
    """A pump served over the virtual radio (a motor stall 60 device seconds in, time 10x); the environment
    of a script that uses it."""
    port = free_port()
    plan = ["--faults", str(ROOT / "examples" / "faults" / "motor-stall.toml"), "--speed", "10"]
    hub = f"tcp-server:127.0.0.1:{port}"
    with itbemu_serve("--ble", hub, "--pin", PIN, *plan, "--btsnoop", str(capture)) as served:
        assert "on ble tcp-server" in served.first_line
        yield {**os.environ, "ITBPROTO_BLE_HCI": f"tcp-client:127.0.0.1:{port}"}


def program(script: str, *args: str) -> list[str]:
    """An example script (examples/NAME.py) or a module (-m NAME), with its arguments."""
    where = [str(ROOT / "examples" / script)] if script.endswith(".py") else ["-m", script]
    return [sys.executable, *where, *args]


@pytest.fixture(scope="module")
def run_example(radio: dict[str, str]) -> Run:
    """A runner for the examples against the pump on the radio: their output, once they ended as expected."""

    def run(script: str, *args: str, status: int = 0) -> str:
        done = subprocess.run(
            program(script, *args), env=radio, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == status, done.stderr
        return done.stdout

    return run


def test_scan_finds_the_pump_by_its_service(run_example: Run) -> None:
    lines = run_example("scan.py", "--seconds", "0.5").splitlines()
    assert lines[-1] == "1 pump(s) found"
    name, rssi, unit, address = lines[0].split()
    assert (name, unit, address) == ("ITB20", "dBm", pump_address("EMU-000001"))
    assert -127 <= int(rssi) <= 20


def test_status_reads_device_information_pairs_and_reads_the_status_sealed(run_example: Run) -> None:
    out = run_example("status.py", "--pin", PIN)
    assert out.startswith(f"ITB20 EMU-000001 at {pump_address('EMU-000001')}, ATT MTU 517\n")
    assert "paired as clinician (key " in out
    rows = dict(line.strip().split(": ", 1) for line in out.splitlines()[2:])
    assert rows["reservoir_ul"] == "20000 µL (20 mL)"
    assert rows["concentration_ug_ml"] == "500 µg/mL"


def test_watch_alarms_prints_the_motor_stall(run_example: Run) -> None:
    """The stall comes 60 device seconds in: announced while watching, or already active on connecting."""
    out = run_example("watch_alarms.py", "--count", "1")
    assert "watching" in out
    (alarm,) = [line for line in out.splitlines() if line.startswith(("alarm: ", "active: "))]
    assert "MOTOR_STALL (alarm 1, raised at " in alarm


def test_watch_alarms_ends_quietly_on_ctrl_c(radio: dict[str, str]) -> None:
    """Issue 25: Ctrl-C ended in a KeyboardInterrupt traceback."""
    watcher = subprocess.Popen(
        program("watch_alarms.py"), env=radio, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert watcher.stdout is not None
    while "watching" not in watcher.stdout.readline():
        pass
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130
    assert "Traceback" not in err, err


def test_the_cli_reads_a_ble_target(run_example: Run) -> None:
    out = run_example("itbproto.cli", "status", "--target", "ble://ITB20", "--json")
    assert json.loads(out)["reservoir_ul"] == 20_000


def test_the_pumps_capture_decodes(run_example: Run, capture: Path) -> None:
    """What `itbemu serve --btsnoop` recorded of a pairing, a sealed session and an unpaired one, through
    `itbproto decode --btsnoop` (run here: with xdist the tests above may run on another worker)."""
    run_example("status.py", "--pin", PIN)
    run_example("watch_alarms.py", "--count", "1")
    out = run_example("itbproto.cli", "decode", "--btsnoop", str(capture), status=1)  # sealed: no keys
    paired = re.findall(r"\[connection (\d+)\] programmer -> pump  PairStart", out)
    assert paired  # status.py paired on one link, then opened a sealed session on the next
    sealed = str(int(paired[-1]) + 1)
    assert f"[connection {sealed}] programmer -> pump  Hello" in out
    assert f"[connection {sealed}] pump -> programmer  not decoded: SealedFrameError" in out
    assert "pump -> programmer  AlarmList" in out  # watch_alarms.py, unpaired

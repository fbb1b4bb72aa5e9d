"""Steps per second of the packaged QA suite (itbproto.qa), through the whole stack: every step is a command
through PumpClient and the codec (fragmented, and sealed after pairing where said), then the oracle's reads.

Targets, in the same run: the emulator in-process with plain frames (the baseline), in-process with every
frame sealed (AES-CCM after SPAKE2 pairing), and `itbemu serve --ble` in another process over the bumble
virtual radio. Goals (issue 17): at least 3,000 steps/s in-process sealed, 500 over BLE. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from itbproto.qa.plugin import Report
from itbproto.qa.targets import InprocTarget, RemoteTarget, Target
from itbproto.qa.test_pump_safety import PumpUnderTest
from itbproto.specfiles import load_rules

GOALS = {"inproc_sealed": 3_000, "ble": 500}


def steps_per_s(target: Target, examples: int) -> tuple[float, int]:
    report = Report(load_rules().ids)
    machine = type("PumpUnderTest", (PumpUnderTest,), {"target": target, "report": report})
    chosen = settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    started = time.perf_counter()
    run_state_machine_as_test(machine, settings=chosen)
    return report.total_steps / (time.perf_counter() - started), report.total_steps


def over_ble(examples: int) -> tuple[float, int]:
    """The suite against `itbemu serve --ble` in another process (ITBPROTO_BLE_HCI set here)."""
    from itbproto.ble.bumble_backend import HCI_ENV, install

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = [
        sys.executable,
        "-m",
        "itbemu",
        "serve",
        "--ble",
        f"tcp-server:127.0.0.1:{port}",
        "--speed",
        "600",
    ]
    pump = subprocess.Popen(serve, stdout=subprocess.PIPE, text=True)
    assert pump.stdout is not None
    assert "on ble" in pump.stdout.readline()
    os.environ[HCI_ENV] = f"tcp-client:127.0.0.1:{port}"
    install()
    try:
        return steps_per_s(RemoteTarget("ble://ITB20"), examples)
    finally:
        del os.environ[HCI_ENV]
        pump.send_signal(signal.SIGTERM)
        pump.communicate(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=40, help="examples (of 25 steps) per target")
    args = parser.parse_args(argv)
    runs: dict[str, Callable[[], tuple[float, int]]] = {
        "inproc_plain": lambda: steps_per_s(InprocTarget(), args.examples),
        "inproc_sealed": lambda: steps_per_s(InprocTarget(pin="493817"), args.examples),
        "ble": lambda: over_ble(max(2, args.examples // 4)),
    }
    result: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        rate, steps = run()
        result[name] = {"steps": steps, "steps_per_s": round(rate, 1)}
        print(f"{name:>14}: {steps} steps, {rate:8.1f} steps/s")
    base = result["inproc_plain"]["steps_per_s"]
    ratios = {name: round(r["steps_per_s"] / base, 3) for name, r in result.items()}
    print(json.dumps({"qa_steps": result, "ratio_vs_inproc_plain": ratios, "goals_steps_per_s": GOALS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

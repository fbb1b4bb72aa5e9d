"""Steps per second of the packaged QA suite (itbproto.qa), through the whole stack: every step is a command
through PumpClient and the codec (fragmented, and sealed after pairing where said), then the oracle's reads.

Targets, in the same run: the emulator in-process with plain frames (the baseline), in-process with every
frame sealed (AES-CCM after SPAKE2 pairing), `itbemu serve --tcp` and `itbemu serve --ble` (over the bumble
virtual radio) in another process. Goals (issue 27): at least 3,000 steps/s in-process sealed, 1,000 over
TCP, 500 over BLE. Beside them, the ceiling: the same search with rules that do nothing (hypothesis alone).

``--breakdown`` also runs the in-process sealed suite under cProfile and says where a step's time goes, by
layer (each function's own time, by its module; the standard library's and builtins' charged to their
callers): hypothesis, client and session, transitions, connection and codec, sealing, pump handler, store,
oracle, the rest of the suite, asyncio; and, across layers, the oracle's reads. Profiling slows everything
about alike, so the shares are what to read. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from itbproto.io.specfiles import load_rules
from itbproto.qa.report import Report
from itbproto.qa.targets import InprocTarget, RemoteTarget, Target
from itbproto.qa.test_pump_safety import PumpUnderTest

GOALS = {"inproc_sealed": 3_000, "tcp": 1_000, "ble": 500}
PIN = "493817"

#: a function's own time goes to the first layer a pattern of which its file (or name) holds
LAYERS = (
    ("hypothesis", ("/hypothesis/",)),
    ("transitions", ("/transitions/", "core/machines/definition")),
    ("sealing", ("/spake2/", "core/security/", "/cryptography/", "AESCCM", "_hashlib", "hmac")),
    ("client and session", ("itbproto/io/client", "core/machines/session/", "itbproto/qa/targets")),
    ("connection and codec", ("core/connection", "core/wire/", "core/link", "/construct/")),
    ("store", ("itbemu/store", "sqlite3")),
    ("pump handler", ("itbemu/", "core/firmware", "core/machines/", "core/safety/", "core/therapy/")),
    ("oracle", ("itbproto/qa/oracle",)),
    ("suite", ("itbproto/qa/",)),
    ("asyncio", ("asyncio/", "select.epoll", "_asyncio", "selectors")),
)
#: the oracle's reads: the calls whose whole time (callees included) is theirs
READS = ("_observe",)


def steps_per_s(target: Target, examples: int) -> tuple[float, int]:
    report = Report(load_rules().ids)
    machine = type("PumpUnderTest", (PumpUnderTest,), {"target": target, "report": report})
    started = time.perf_counter()
    run_state_machine_as_test(machine, settings=_settings(examples))
    return report.total_steps / (time.perf_counter() - started), report.total_steps


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )


def hypothesis_ceiling(examples: int) -> tuple[float, int]:
    """The same search with every rule and the invariant doing nothing: the steps per second hypothesis
    itself allows (the suite cannot go faster)."""
    steps = [0]

    def nothing(self: RuleBasedStateMachine, **drawn: object) -> None:
        return None

    def count(self: RuleBasedStateMachine) -> None:
        steps[0] += 1

    body: dict[str, object] = {
        name: rule(**found.arguments)(nothing)  # type: ignore[no-untyped-call]
        for name, function in vars(PumpUnderTest).items()
        if (found := getattr(function, "hypothesis_stateful_rule", None)) is not None
    }
    body |= {"start": initialize()(nothing), "the_pump_kept_every_rule": invariant()(count)}
    machine = type("Ceiling", (RuleBasedStateMachine,), body)
    started = time.perf_counter()
    run_state_machine_as_test(machine, settings=_settings(examples))
    return steps[0] / (time.perf_counter() - started), steps[0]


def _layer(where: str) -> str | None:
    return next((name for name, marks in LAYERS if any(mark in where for mark in marks)), None)


def breakdown(stats: pstats.Stats, steps: int) -> dict[str, float]:
    """µs per step by layer, from a profile of ``steps`` steps (see the module docstring)."""
    table = stats.stats  # type: ignore[attr-defined]
    own: dict[str, float] = defaultdict(float)

    def charge(func: tuple[str, int, str], seconds: float, depth: int = 0) -> None:
        layer = _layer(f"{func[0]}:{func[2]}")
        callers = table[func][4] if func in table else {}
        if layer is not None or not callers or depth > 8:
            own[layer or "other"] += seconds
            return
        calls = sum(c[1] for c in callers.values()) or 1
        for caller, c in callers.items():
            charge(caller, seconds * c[1] / calls, depth + 1)

    reads = 0.0
    for func, (_, _, tottime, cumtime, _) in table.items():  # (tottime, cumtime: seconds)
        charge(func, tottime)
        if func[2] in READS and "itbproto/qa/" in func[0]:
            reads += cumtime
    per_step = {name: round(s / steps * 1e6, 1) for name, s in sorted(own.items(), key=lambda i: -i[1])}
    per_step["of which the oracle's reads (all layers)"] = round(reads / steps * 1e6, 1)
    return per_step


def profiled(target: Target, examples: int) -> tuple[dict[str, float], int]:
    steps_per_s(target, 2)  # imports and first-time costs out of the way
    profile = cProfile.Profile()
    profile.enable()
    _, steps = steps_per_s(target, examples)
    profile.disable()
    return breakdown(pstats.Stats(profile), steps), steps


@contextmanager
def served(*how: str) -> Iterator[subprocess.Popen[str]]:
    """`itbemu serve` in another process (until the block ends)."""
    serve = [sys.executable, "-m", "itbemu", "serve", *how, "--pin", PIN, "--speed", "600"]
    pump = subprocess.Popen(serve, stdout=subprocess.PIPE, text=True)
    assert pump.stdout is not None
    assert " on " in pump.stdout.readline()
    try:
        yield pump
    finally:
        pump.send_signal(signal.SIGTERM)
        pump.communicate(timeout=30)


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def over_tcp(examples: int) -> tuple[float, int]:
    port = _port()
    with served("--tcp", f"127.0.0.1:{port}"):
        return steps_per_s(RemoteTarget(f"tcp://127.0.0.1:{port}", pin=PIN), examples)


def over_ble(examples: int) -> tuple[float, int]:
    """The suite against `itbemu serve --ble` in another process (ITBPROTO_BLE_HCI set here)."""
    from itbproto.io.ble.bumble_backend import HCI_ENV, install

    port = _port()
    with served("--ble", f"tcp-server:127.0.0.1:{port}"):
        os.environ[HCI_ENV] = f"tcp-client:127.0.0.1:{port}"
        install()
        try:
            return steps_per_s(RemoteTarget("ble://ITB20", pin=PIN), examples)
        finally:
            del os.environ[HCI_ENV]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=40, help="examples (of 25 steps) per target")
    parser.add_argument("--breakdown", action="store_true", help="where a step's time goes, by layer")
    args = parser.parse_args(argv)
    runs: dict[str, Callable[[], tuple[float, int]]] = {
        "hypothesis_only": lambda: hypothesis_ceiling(args.examples),
        "inproc_plain": lambda: steps_per_s(InprocTarget(), args.examples),
        "inproc_sealed": lambda: steps_per_s(InprocTarget(pin=PIN), args.examples),
        "tcp": lambda: over_tcp(max(2, args.examples // 2)),
        "ble": lambda: over_ble(max(2, args.examples // 4)),
    }
    result: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        rate, steps = run()
        result[name] = {"steps": steps, "steps_per_s": round(rate, 1)}
        print(f"{name:>14}: {steps} steps, {rate:8.1f} steps/s")
    base = result["inproc_plain"]["steps_per_s"]
    out: dict[str, object] = {
        "qa_steps": result,
        "ratio_vs_inproc_plain": {name: round(r["steps_per_s"] / base, 3) for name, r in result.items()},
        "goals_steps_per_s": GOALS,
    }
    if args.breakdown:
        layers, steps = profiled(InprocTarget(pin=PIN), args.examples // 2)
        print(f"where a step's time goes (in-process sealed, {steps} steps under cProfile), µs per step:")
        for layer, us in layers.items():
            print(f"  {layer:>42}: {us:8.1f}")
        out["breakdown_us_per_step_profiled"] = layers
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

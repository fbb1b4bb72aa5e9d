"""Crash safety at scale: a process programming a stored pump is killed with SIGKILL thousands of times at
random moments (itbemu.crash); every acknowledged change, every log entry and the meaning of every
transaction id must survive each kill. The baseline, in the same run, is the same commands with no
kill (acknowledged commands per second through the store; and with ``fsync``, a disk flush per change), so
the figures say what the kills cost. The last line printed is one JSON object. Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from itbemu import Emulator, Store
from itbemu.crash import crash_test, program
from itbproto.core.safety import SafetyPolicy
from itbproto.core.therapy import TherapyState
from itbproto.io.specfiles import load_drug, load_profile, load_rules


def new_store(path: Path, policy: SafetyPolicy) -> None:
    therapy = TherapyState.new(
        now=1_000 * 86_400,
        profile=load_profile("itb-20"),
        drug=load_drug(),
        concentration_ug_ml=500,
        reservoir_ul=20_000,
    )
    with Store(path) as store:
        Emulator.create(therapy, policy, serial="CRASH", store=store)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-commands", type=int, default=500)
    args = parser.parse_args(argv)
    policy = SafetyPolicy(load_rules())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pump.db"
        new_store(path, policy)
        rates = {}  # the baseline: the same commands through the store, no kill (and with a flush each)
        for fsync in (False, True):
            with Store(path, fsync=fsync) as store:
                emulator, acked = Emulator.open(store, policy), list[int]()
                started = time.perf_counter()
                program(emulator, acked.append, count=args.baseline_commands)
                rates[fsync] = len(acked) / (time.perf_counter() - started)
                emulator.close()
        baseline_per_s = rates[False]
        started = time.perf_counter()
        report = crash_test(path, policy, kills=args.kills, seed=args.seed)
        wall = time.perf_counter() - started
    rows = [
        ("kills", report.kills),
        ("commands acknowledged", report.acknowledged),
        ("commands stored", report.applied),
        ("stored, Ack never out", report.applied - report.acknowledged),
        ("retries answered from memory", report.retries_answered),
        ("violations", len(report.violations)),
        ("wall time, s", f"{wall:.1f}"),
        ("no kills: commands/s", f"{baseline_per_s:.0f}"),
        ("no kills, --fsync: commands/s", f"{rates[True]:.0f}"),
    ]
    for name, value in rows:
        print(f"{name:>30}: {value}")
    for violation in report.violations[:20]:
        print(f"  {violation}")
    print(
        json.dumps(
            {
                "crash": {
                    "kills": report.kills,
                    "acknowledged": report.acknowledged,
                    "stored": report.applied,
                    "stored_not_acknowledged": report.applied - report.acknowledged,
                    "retries_answered": report.retries_answered,
                    "violations": len(report.violations),
                    "wall_s": round(wall, 2),
                    "kills_per_s": round(report.kills / wall, 1),
                    "baseline_commands_per_s": round(baseline_per_s),
                    "baseline_fsync_commands_per_s": round(rates[True]),
                    "acknowledged_per_s_vs_baseline": round(report.acknowledged / wall / baseline_per_s, 3),
                }
            }
        )
    )
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())

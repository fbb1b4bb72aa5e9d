"""Simulation speed: 7 years of a 4-step flex schedule with refills every 60 days, on the virtual clock.

The emulator integrates delivery exactly between events (a refill, an alarm, the battery's indicators), so
years take about as long as their events. The baseline, measured in the same run, is the same emulator
advanced one hour at a time (what a ticking loop would do) over one year; both ledgers must hold the same
dose to the ng × 86 400. The last line printed is one JSON object. Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from itbemu import Emulator, simulate
from itbemu.device import START
from itbproto.core.safety import SafetyPolicy
from itbproto.core.therapy import SCALE, TherapyState, apply, dose_between
from itbproto.core.wire import CommitPrescription, StagePrescription
from itbproto.io.specfiles import load_drug, load_prescription, load_profile, load_rules

ROOT = Path(__file__).resolve().parent.parent
FLEX = ROOT / "examples" / "prescriptions" / "flex-4-step.toml"
GOAL_S = 1.0  # issue 14: 7 years in at most a second


def pump() -> Emulator:
    """A pump running the flex prescription from START (no safety check: a bench, not a clinic)."""
    p = load_prescription(FLEX)
    state = TherapyState.new(
        now=START,
        profile=load_profile("itb-20"),
        drug=load_drug(),
        concentration_ug_ml=p.concentration_ug_ml,
        reservoir_ul=20_000,
    )
    staged = apply(state, StagePrescription(prescription=p))
    assert staged.staged is not None
    running = apply(staged, CommitPrescription(stage_id=staged.staged.stage_id, digest=staged.staged.digest))
    return Emulator.create(running, SafetyPolicy(load_rules()), serial="BENCH")


def advance(step_s: int | None, days: int) -> tuple[float, int]:
    """Seconds to let ``days`` pass (in steps of ``step_s``; None: one call), and the dose delivered."""
    emu = pump()
    started = time.perf_counter()
    if step_s is None:
        emu.advance_to(START + days * SCALE)
    else:
        for t in range(START + step_s, START + days * SCALE + 1, step_s):
            emu.advance_to(t)
    return time.perf_counter() - started, dose_between(emu.ledger, START, START + days * SCALE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2_555)
    parser.add_argument("--baseline-days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    policy, p = SafetyPolicy(load_rules()), load_prescription(FLEX)
    best, sim = float("inf"), None
    for _ in range(args.rounds):
        started = time.perf_counter()
        sim = simulate(
            days=args.days,
            profile=load_profile("itb-20"),
            drug=load_drug(),
            policy=policy,
            prescription=p,
            refill_every=60,
        )
        best = min(best, time.perf_counter() - started)
    assert sim is not None
    assert sim.emulator is not None
    hourly_s, hourly_dose = advance(3_600, args.baseline_days)
    events_s, events_dose = advance(None, args.baseline_days)
    summary = sim.summary()
    rows = [
        ("simulate, days", args.days),
        ("wall time, s", f"{best:.3f} (goal {GOAL_S})"),
        ("refills", summary["refills"]),
        ("ledger segments", len(sim.emulator.ledger)),
        (f"{args.baseline_days} days hourly ticks, s", f"{hourly_s:.3f}"),
        (f"{args.baseline_days} days event-driven, s", f"{events_s:.4f}"),
    ]
    for name, value in rows:
        print(f"{name:>28}: {value}")
    result = {
        "simulate": {
            "days": args.days,
            "wall_s": round(best, 4),
            "goal_s": GOAL_S,
            "goal_met": best <= GOAL_S,
            "refills": summary["refills"],
            "ledger_segments": len(sim.emulator.ledger),
            "delivered_ug": summary["delivered_ug"],
            "battery_eri_day": summary["battery_eri_day"],
        },
        "baseline": {
            "days": args.baseline_days,
            "hourly_ticks_s": round(hourly_s, 4),
            "event_driven_s": round(events_s, 5),
            "speedup": round(hourly_s / max(events_s, 1e-9), 1),
            "same_dose": hourly_dose == events_dose,
        },
    }
    print(json.dumps(result))
    return 0 if hourly_dose == events_dose else 1


if __name__ == "__main__":
    sys.exit(main())

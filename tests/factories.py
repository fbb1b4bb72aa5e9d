"""Small builders for therapy states and commands used across the safety tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from itbproto.safety import SafetyPolicy, Verdict, evaluate
from itbproto.specfiles import load_drug, load_profile, load_rules
from itbproto.therapy import SCALE, TherapyState, advance, apply
from itbproto.wire import (
    CommitPrescription,
    FlexStep,
    Message,
    Origin,
    PatientBolusPolicy,
    PatientGroup,
    Prescription,
    PrescriptionMode,
    StagePrescription,
)

DAY = SCALE
T0 = 100 * DAY  # device midnight, day 100
POLICY = SafetyPolicy(load_rules())


def prescription(rate: int = 800, **changes: Any) -> Prescription:
    """A continuous 500 µg/mL prescription: 800 µL/day = 400 µg/day, max 600 µg/day, 50 µg bolus."""
    base = Prescription(
        mode=PrescriptionMode.CONTINUOUS,
        origin=Origin.SPINAL,
        group=PatientGroup.ADULT,
        concentration_ug_ml=500,
        steps=(FlexStep(start_s=0, rate_ul_day=rate),),
        boluses=(),
        patient=PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3),
        max_daily_dose_ng=600_000,
        max_bolus_ng=50_000,
    )
    return replace(base, **changes)


def empty_pump(**changes: Any) -> TherapyState:
    """A new pump: 20 mL of 500 µg/mL, stopped, no prescription."""
    state = TherapyState(
        now=T0,
        profile=load_profile("itb-20"),
        drug=load_drug(),
        concentration_ug_ml=500,
        reservoir_scaled=20_000 * SCALE,
    )
    return replace(state, **changes)


def programmed(p: Prescription | None = None, *, history_days: int = 2, **changes: Any) -> TherapyState:
    """A pump that has run ``p`` for ``history_days`` days (so titration has a 24 h reference)."""
    p = p or prescription()
    state = empty_pump(now=T0 - history_days * DAY)
    state = apply(apply(state, StagePrescription(prescription=p)), CommitPrescription(stage_id=1, digest=0))
    state, _ = advance(state, T0)
    return replace(state, **changes)


def verdict(command: Message, state: TherapyState, policy: SafetyPolicy = POLICY) -> Verdict:
    return evaluate(command, state, policy)


def refused_by(command: Message, state: TherapyState, policy: SafetyPolicy = POLICY) -> set[str]:
    return set(verdict(command, state, policy).rule_ids)

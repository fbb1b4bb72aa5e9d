"""Small builders for therapy states and commands used across the safety tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from itbproto.safety import SafetyPolicy, Verdict, evaluate
from itbproto.specfiles import load_drug, load_profile, load_rules
from itbproto.therapy import TherapyState, advance, apply
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

DAY = 86_400
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
    state = TherapyState.new(
        now=T0, profile=load_profile("itb-20"), drug=load_drug(), concentration_ug_ml=500, reservoir_ul=20_000
    )
    return replace(state, **changes)


def commit(state: TherapyState) -> CommitPrescription:
    """The command that commits what ``state`` has staged."""
    assert state.staged is not None, "nothing staged"
    return state.staged.commit


def in_force(state: TherapyState, p: Prescription) -> TherapyState:
    """``state`` with ``p`` staged and committed (no safety check)."""
    staged = apply(state, StagePrescription(prescription=p))
    return apply(staged, commit(staged))


def programmed(p: Prescription | None = None, *, history_days: int = 2, **changes: Any) -> TherapyState:
    """A pump that has run ``p`` for ``history_days`` days (so titration has a 24 h reference)."""
    state = in_force(empty_pump(now=T0 - history_days * DAY), p or prescription())
    state, _ = advance(state, T0)
    return replace(state, **changes)


def verdict(command: Message, state: TherapyState, policy: SafetyPolicy = POLICY) -> Verdict:
    return evaluate(command, state, policy)


def refused_by(command: Message, state: TherapyState, policy: SafetyPolicy = POLICY) -> set[str]:
    return set(verdict(command, state, policy).rule_ids)

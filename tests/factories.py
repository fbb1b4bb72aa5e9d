"""Small builders for therapy states and commands used across the safety tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from itbproto.core.safety import SafetyPolicy, Verdict, evaluate
from itbproto.core.therapy import SCALE, TherapyState, advance, apply
from itbproto.core.wire import (
    NO_ACK,
    Acknowledgement,
    BolusKind,
    BolusStart,
    CommitPrescription,
    FlexStep,
    Message,
    MriBegin,
    MriEnd,
    Origin,
    PatientBolusPolicy,
    PatientGroup,
    PatientRecord,
    PeriodicBolus,
    Phase,
    Prescription,
    PrescriptionMode,
    Procedure,
    RecordProcedure,
    RefillBegin,
    RefillConfirm,
    RefillResidual,
    RefillStageDrug,
    Resume,
    StagePrescription,
    Suspend,
)
from itbproto.io.specfiles import load_drug, load_profile, load_rules

DAY = 86_400
T0 = 100 * DAY  # device midnight, day 100
POLICY = SafetyPolicy(load_rules())

#: an adult of spinal origin in therapy, screened with an effective 300 µg (a first daily dose up to 600 µg)
PATIENT = PatientRecord(
    group=PatientGroup.ADULT,
    origin=Origin.SPINAL,
    risks=frozenset(),
    phase=Phase.THERAPY,
    screening_dose_ng=300_000,
    screening_effect_s=2 * 3600,
)


def patient(**changes: Any) -> PatientRecord:
    return replace(PATIENT, **changes)


def policy(**values: int) -> SafetyPolicy:
    """The default policy tightened: ``policy(TITR_003__pct=10)`` sets TITR-003's ``pct`` to 10."""
    return SafetyPolicy(
        load_rules(), {k.replace("__", ".").replace("_", "-", 1): v for k, v in values.items()}
    )


def ack(*rules: str) -> Acknowledgement:
    """The user acknowledges these rules' hazards."""
    return Acknowledgement(rules=rules, by="test")


def prescription(rate: int = 800, **changes: Any) -> Prescription:
    """A continuous 500 µg/mL prescription: 800 µL/day = 400 µg/day, max 600 µg/day, 50 µg bolus."""
    base = Prescription(
        mode=PrescriptionMode.CONTINUOUS,
        concentration_ug_ml=500,
        steps=(FlexStep(start_s=0, rate_ul_day=rate),),
        boluses=(),
        patient=PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3),
        max_daily_dose_ng=600_000,
        max_bolus_ng=50_000,
    )
    return replace(base, **changes)


def empty_pump(record: PatientRecord = PATIENT, **changes: Any) -> TherapyState:
    """A pump in therapy: 20 mL of 500 µg/mL, stopped, no prescription yet, its path full of drug."""
    state = TherapyState.new(
        now=changes.pop("now", T0),
        profile=load_profile("itb-20"),
        drug=load_drug(),
        concentration_ug_ml=changes.pop("concentration_ug_ml", 500),
        reservoir_ul=20_000,
        record=record,
    )
    return replace(state, **changes)


def commit(state: TherapyState, **changes: Any) -> CommitPrescription:
    """The command that commits what ``state`` has staged."""
    assert state.staged is not None, "nothing staged"
    return replace(state.staged.commit, **changes)


def in_force(state: TherapyState, p: Prescription) -> TherapyState:
    """``state`` with ``p`` staged and committed (no safety check)."""
    staged = apply(state, StagePrescription(prescription=p))
    return apply(staged, commit(staged))


def programmed(
    p: Prescription | None = None, *, history_days: int = 2, record: PatientRecord = PATIENT, **changes: Any
) -> TherapyState:
    """A pump that has run ``p`` for ``history_days`` days (so titration has a 24 h reference)."""
    start = T0 - history_days * DAY
    p = p or prescription()
    state = in_force(empty_pump(record, now=start, concentration_ug_ml=p.concentration_ug_ml), p)
    state, _ = advance(state, T0)
    return replace(state, **changes)


def verdict(command: Message, state: TherapyState, policy: SafetyPolicy = POLICY) -> Verdict:
    return evaluate(command, state, policy)


def refused_by(command: Message, state: TherapyState, policy: SafetyPolicy = POLICY) -> set[str]:
    """The rules that refuse the command: broken limits and hazards it does not acknowledge."""
    v = verdict(command, state, policy)
    return {x.rule_id for x in (*v.violations, *v.unacknowledged)}


def rid(state: TherapyState) -> int:
    """The id of the refill in progress (or of the one the next RefillBegin starts)."""
    return state.refill.refill_id if state.refill is not None else state.next_id


def refill_staged(
    state: TherapyState, volume: int = 20_000, conc: int = 500, measured: int | None = None
) -> TherapyState:
    state = apply(state, RefillBegin())
    assert state.refill is not None
    expected = state.refill.expected_residual_ul
    state = apply(
        state, RefillResidual(refill_id=rid(state), measured_ul=expected if measured is None else measured)
    )
    return apply(state, RefillStageDrug(refill_id=rid(state), volume_ul=volume, concentration_ug_ml=conc))


def confirm(
    state: TherapyState, volume: int = 20_000, conc: int = 500, acknowledged: bool = False
) -> RefillConfirm:
    """The second confirmation of what ``state`` has staged (its digest, if it staged anything)."""
    digest = state.refill.digest if state.refill is not None and state.refill.digest is not None else 0
    return RefillConfirm(
        refill_id=rid(state),
        volume_ul=volume,
        concentration_ug_ml=conc,
        digest=digest,
        bridge=False,
        ack=ack("REFILL-003") if acknowledged else NO_ACK,
    )


# --- builders for the rule table (tests/test_rule_table.py) --------------------------------------------


def prescription_for_daily(ng_day: int, conc: int = 50, **changes: Any) -> Prescription:
    """A prescription delivering exactly ``ng_day`` ng a day at ``conc`` µg/mL: whole µL/day, and one µL/day
    more for the seconds the rest takes (at 50 µg/mL, 1728 s a ng); a flex schedule unless it divides."""
    whole, rest = divmod(ng_day, conc)
    seconds, inexact = divmod(rest * DAY, conc)
    assert not inexact, f"{ng_day} ng/day is no whole number of seconds at {conc} µg/mL"
    if not seconds:
        return prescription(rate=whole, concentration_ug_ml=conc, **changes)
    steps = (FlexStep(start_s=0, rate_ul_day=whole + 1), FlexStep(start_s=seconds, rate_ul_day=whole))
    return prescription(mode=PrescriptionMode.FLEX, concentration_ug_ml=conc, steps=steps, **changes)


def acknowledging(command: Message, *rules: str) -> Message:
    """``command`` acknowledging ``rules`` too (a command with an ``ack`` field)."""
    held: Acknowledgement = cast(Any, command).ack
    out: Message = replace(cast(Any, command), ack=Acknowledgement(rules=(*held.rules, *rules), by="test"))
    return out


def interrupted(
    gap_s: int, p: Prescription | None = None, record: PatientRecord = PATIENT, *, stopped: bool = False
) -> TherapyState:
    """A pump that ran ``p`` for two days, then delivered nothing for ``gap_s`` until T0: suspended until
    resumed, or (``stopped``) stopped by an MRI scan, so that programming it starts delivery again."""
    p = p or prescription()
    start = empty_pump(record, now=T0 - gap_s - 2 * DAY, concentration_ug_ml=p.concentration_ug_ml)
    state = in_force(start, p)
    state, _ = advance(state, T0 - gap_s)
    if stopped:
        state = apply(apply(state, MriBegin(emptied_ul=0, ack=ack("MRI-002"))), MriEnd())
    else:
        state = apply(state, Suspend(duration_s=0, ack=ack("STOP-002")))
    state, _ = advance(state, T0)
    return state


def accepted(state: TherapyState, command: Any) -> TherapyState:
    """``command`` applied as the stateful proof applies it: every hazard acknowledged, limits checked."""
    v = verdict(command, state)
    if v.unacknowledged and not v.violations:
        command = replace(command, ack=ack(*v.to_acknowledge))
        v = verdict(command, state)
    assert v.accepted, v.rule_ids
    return apply(state, command)


def before_a_second_surgery() -> tuple[TherapyState, list[Any]]:
    """A day at 150 µg/day, an implant, then 20 µg/day (its first drug a day away behind the saline): the
    state just before a second implant shortens the path, and what reached the tip so far."""
    state = empty_pump(concentration_ug_ml=50, reservoir_scaled=2_000 * SCALE)
    first = prescription(
        rate=3_011,
        concentration_ug_ml=50,
        boluses=(PeriodicBolus(start_s=0, volume_ul=2, duration_s=3_600),),
        max_daily_dose_ng=152_100,
        max_bolus_ng=10_000,
    )
    state = accepted(state, StagePrescription(prescription=first))
    state = accepted(state, commit(state))
    flows: list[Any] = []
    for step in (3_600, 5_588):
        state, more = advance(state, state.now + step)
        flows += more
    state = accepted(accepted(state, MriBegin(emptied_ul=0)), MriEnd())
    state = accepted(state, Resume())
    state, more = advance(state, state.now + 1_543)
    flows += more
    state = accepted(state, RecordProcedure(procedure=Procedure.PUMP_IMPLANT, catheter_volume_ul=0))
    second = prescription(rate=280, concentration_ug_ml=50, max_daily_dose_ng=20_000, max_bolus_ng=10_000)
    state = accepted(state, StagePrescription(prescription=second))
    state = accepted(state, commit(state))
    state = accepted(state, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=1, duration_s=1_800))
    return state, flows

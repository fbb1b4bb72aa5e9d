"""Every rule of specs/safety-rules.toml as one row of a table, and a few generic runners that pin the rows.

A row says, from the rule's statement and its catalog entry: the rule's level, the commands it checks
(exactly the engine's CHECKS), the patient categories (adult or child, spinal or cerebral origin) and phases
it covers, its policy parameters, its numeric boundaries (each as the last accepted and the first refused
value, one unit apart: 1 ng, 1 µL, 1 µL/day, 1 s, 1 µg/mL) with the tightened policies that move them, and
for each command it checks a command that breaks it. The runners check both sides of every boundary in
every category and phase the row covers, every command, every tightening, and the level (a limit cannot be
acknowledged away; an acknowledgeable hazard passes once acknowledged). The last tests check the table
against the catalog and CHECKS, so a rule or parameter added there fails here until its row is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, NamedTuple

import pytest

from factories import (
    DAY,
    POLICY,
    T0,
    ack,
    acknowledging,
    commit,
    confirm,
    empty_pump,
    interrupted,
    patient,
    policy,
    prescription,
    prescription_for_daily,
    programmed,
    refill_staged,
    refused_by,
    rid,
)
from itbproto.core.safety import SafetyPolicy, Verdict, evaluate
from itbproto.core.safety.rules import CHECKS
from itbproto.core.therapy import SCALE, Battery, TherapyState, advance, apply
from itbproto.core.therapy.flows import Flow
from itbproto.core.therapy.fluid import Path, Segment
from itbproto.core.therapy.schedule import daily_dose_scaled
from itbproto.core.wire import (
    AlarmCode,
    AlarmRecord,
    AlarmSilence,
    AlarmThresholds,
    BolusCancel,
    BolusKind,
    BolusStart,
    CommitPrescription,
    FlexStep,
    Message,
    MriBegin,
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
    RecordScreeningResponse,
    RefillBegin,
    RefillConfirm,
    RefillResidual,
    RefillStageDrug,
    Resume,
    ScreeningResponse,
    SessionEnd,
    SetClock,
    SetPatientRecord,
    SetRate,
    SetThresholds,
    Severity,
    StagePrescription,
    Suspend,
)
from itbproto.errors import FieldRangeError, PolicyError
from itbproto.io.specfiles import load_profile, load_rules

HOUR = 3_600
CATALOG = load_rules()


# --- the table's vocabulary ---------------------------------------------------------------------------------


class Category(NamedTuple):
    """The patient record's category the limits read: its group and the spasticity's origin."""

    group: PatientGroup
    origin: Origin

    def __str__(self) -> str:
        return f"{self.group.name.lower()}-{self.origin.name.lower()}"


ADULT_SPINAL = Category(PatientGroup.ADULT, Origin.SPINAL)
ADULT_CEREBRAL = Category(PatientGroup.ADULT, Origin.CEREBRAL)
CHILD_SPINAL = Category(PatientGroup.CHILD, Origin.SPINAL)
CHILD_CEREBRAL = Category(PatientGroup.CHILD, Origin.CEREBRAL)
CATEGORIES = (ADULT_SPINAL, ADULT_CEREBRAL, CHILD_SPINAL, CHILD_CEREBRAL)
ADULTS = (ADULT_SPINAL, ADULT_CEREBRAL)
CHILDREN = (CHILD_SPINAL, CHILD_CEREBRAL)
PHASES = (Phase.SCREENING, Phase.IMPLANTED, Phase.THERAPY)
THERAPY = (Phase.THERAPY,)


class Case(NamedTuple):
    """A command, the state it is checked in, and the policy in force."""

    command: Message
    state: TherapyState
    policy: SafetyPolicy = POLICY


#: a case built on the patient record of one category and phase
Build = Callable[[PatientRecord], Case]
#: a case built on a record and the boundary's value
Edge = Callable[[PatientRecord, int], Case]


@dataclass(frozen=True)
class Tightening:
    """A tighter policy value (``"RULE-ID.param"``) and the edge it moves the boundary to."""

    param: str
    value: int
    accepted: int
    refused: int


@dataclass(frozen=True)
class Boundary:
    """A numeric boundary: ``build(record, accepted)`` is accepted, ``build(record, refused)`` (one unit
    past) refused by the rule, and by ``also`` (rules a command past this edge always breaks too)."""

    what: str
    build: Edge
    accepted: int
    refused: int
    tighten: tuple[Tightening, ...] = ()
    also: frozenset[str] = frozenset()
    categories: tuple[Category, ...] | None = None  # None: every category of the row
    phases: tuple[Phase, ...] | None = None  # None: every phase of the row
    bug: str | None = None  # the refused side is a known defect (strict xfail)


@dataclass(frozen=True)
class Breaks:
    """A command of one type that breaks the rule (with ``also``, rules it cannot help breaking too)."""

    build: Build
    also: frozenset[str] = frozenset()
    categories: tuple[Category, ...] | None = None
    phases: tuple[Phase, ...] | None = None
    bug: str | None = None


@dataclass(frozen=True)
class Row:
    """One rule: its level, the commands CHECKS runs it on, the categories and phases it covers, its
    parameters, its boundaries, and a breaking command per command type (or why none can break it)."""

    level: Literal["limit", "acknowledge"]
    commands: tuple[type[Message], ...]
    categories: tuple[Category, ...]
    phases: tuple[Phase, ...]
    params: tuple[str, ...] = ()
    boundaries: tuple[Boundary, ...] = ()
    breaks: Mapping[type[Message], Breaks] = field(default_factory=dict)
    unbreakable: Mapping[type[Message], str] = field(default_factory=dict)


_PROGRAM: tuple[type[Message], ...] = (StagePrescription, CommitPrescription, SetRate)
PRESCRIBING: tuple[type[Message], ...] = (*_PROGRAM, RefillConfirm)
STARTS_DELIVERY: tuple[type[Message], ...] = (*PRESCRIBING, BolusStart, Resume, Suspend)


# --- builders -----------------------------------------------------------------------------------------------


def record_for(category: Category, phase: Phase) -> PatientRecord:
    """The record of a patient of ``category`` in ``phase`` (screened with 300 µg, unless still screening)."""
    record = patient(group=category.group, origin=category.origin, phase=phase)
    if phase is Phase.SCREENING:
        record = replace(record, screening_dose_ng=0, screening_effect_s=0)
    return record


def with_group(record: PatientRecord, group: PatientGroup, origin: Origin | None = None) -> PatientRecord:
    return replace(record, group=group, origin=record.origin if origin is None else origin)


def set_record(record: PatientRecord) -> SetPatientRecord:
    return SetPatientRecord(group=record.group, origin=record.origin, risks=record.risks, phase=record.phase)


def at(state: TherapyState, t: int) -> TherapyState:
    return advance(state, t)[0]


def bolus(volume: int, duration: int = HOUR, kind: BolusKind = BolusKind.CLINICIAN) -> BolusStart:
    return BolusStart(kind=kind, volume_ul=volume, duration_s=duration)


def patient_bolus(p: Prescription) -> BolusStart:
    return bolus(p.patient.volume_ul, p.patient.duration_s, BolusKind.PATIENT)


def stage(p: Prescription) -> StagePrescription:
    return StagePrescription(prescription=p)


def committing(state: TherapyState, p: Prescription, *acks: str, policy: SafetyPolicy = POLICY) -> Case:
    """The commit of ``p`` (acknowledging ``acks``), checked in the state that staged it."""
    staged = apply(state, stage(p))
    return Case(commit(staged, ack=ack(*acks)), staged, policy)


def refilling(state: TherapyState, volume: int, conc: int, *acks: str, measured: int | None = None) -> Case:
    """The confirmation of a refill of ``volume`` µL at ``conc`` µg/mL (no bridge), acknowledging ``acks``."""
    staged = refill_staged(state, volume=volume, conc=conc, measured=measured)
    return Case(replace(confirm(staged, volume=volume, conc=conc), ack=ack(*acks)), staged)


def policy_with(base: SafetyPolicy, param: str, value: int) -> SafetyPolicy:
    return SafetyPolicy(CATALOG, {**base.values, param: value})


def thresholds(**changes: int) -> SetThresholds:
    base = AlarmThresholds(low_reservoir_ul=2_000, low_reservoir_days=7, eri_lead_days=90, reannunciate_s=600)
    return SetThresholds(thresholds=replace(base, **changes))


def flex(low: int, high: int, **changes: Any) -> Prescription:
    """Half a day at ``low`` µL/day, half at ``high`` (500 µg/mL)."""
    steps = (FlexStep(start_s=0, rate_ul_day=low), FlexStep(start_s=DAY // 2, rate_ul_day=high))
    return prescription(mode=PrescriptionMode.FLEX, steps=steps, **changes)


def steps_of(*starts: int, rate: int = 800) -> tuple[FlexStep, ...]:
    return tuple(FlexStep(start_s=s, rate_ul_day=rate) for s in starts)


def with_tip_dose(state: TherapyState, ng: int) -> tuple[int, TherapyState]:
    """A bolus volume, and ``state`` with the fluid path changed so that this bolus brings exactly ``ng`` to
    the tip: whole µL of the reservoir's 500 µg/mL, less what a sliver of 50 µg/mL at the tip takes (192
    µL/86 400 of it carries 1 ng less than the same of 500 µg/mL)."""
    assert state.concentration_ug_ml == 500
    volume = -(-ng // 500)
    sliver = (500 * volume - ng) * 192
    path = Path((Segment(sliver, 50), Segment(250 * SCALE - sliver, 500))) if sliver else state.path
    return volume, replace(state, path=path)


def bolus_at_rate(rate: int) -> BolusStart:
    """The smallest bolus the pump delivers at exactly ``rate`` µL/day (⌊V·86 400 / D⌋)."""
    for volume in range(1, 10_000):
        for duration in range(max(1, volume * SCALE // (rate + 1)), volume * SCALE // rate + 2):
            if volume * SCALE // duration == rate:
                return bolus(volume, duration)
    raise AssertionError(rate)


def saline_path(state: TherapyState, saline_scaled: int, conc: int | None = None) -> TherapyState:
    """``state`` with the tip end of its path at ``conc`` µg/mL (saline: 0) for ``saline_scaled`` µL × 86 400,
    the reservoir's drug behind it."""
    rest = state.path.volume_scaled - saline_scaled
    path = Path((Segment(saline_scaled, conc or 0), Segment(rest, state.concentration_ug_ml)))
    return replace(state, path=path)


def critical_alarm(state: TherapyState) -> TherapyState:
    alarm = AlarmRecord(
        alarm_id=5,
        code=AlarmCode.MOTOR_STALL,
        severity=Severity.CRITICAL,
        raised_at=state.now,
        silenced_until=0,
        acknowledged=False,
    )
    return replace(state, alarms=(alarm,))


def end_of_service(state: TherapyState) -> TherapyState:
    return replace(state, battery=Battery.EOS, charge_scaled=0)


def valve(record: PatientRecord, held_ul: int) -> TherapyState:
    """A valve-gated pump holding ``held_ul``."""
    return replace(empty_pump(record, profile=load_profile("itbv-20")), reservoir_scaled=held_ul * SCALE)


def first_screening_dose(record: PatientRecord, response: ScreeningResponse, after_s: int) -> TherapyState:
    """A screening pump (50 µg/mL) ``after_s`` after a 50 µg screening dose whose response was recorded."""
    state = empty_pump(record, concentration_ug_ml=50)
    state = apply(state, bolus(1_000, 4 * HOUR))
    state = apply(at(state, T0 + 4 * HOUR), RecordScreeningResponse(response=response, effect_s=0))
    return at(state, T0 + after_s)


def relabelled(
    record: PatientRecord, before: PatientRecord, since_s: int, p: Prescription | None = None
) -> TherapyState:
    """A pump that ran ``p`` for ``before``, whose record became ``record`` ``since_s`` ago."""
    state = programmed(p, record=before, history_days=1)
    return at(apply(state, set_record(record)), T0 + since_s)


def interruption_restarted(record: PatientRecord, gap: int) -> Case:
    return Case(Resume(), interrupted(gap, record=record))


def patient_policy(**changes: int) -> PatientBolusPolicy:
    return replace(prescription().patient, **changes)


def three_patient_boluses(record: PatientRecord, p: Prescription, until: int) -> TherapyState:
    """A pump that gave three patient boluses (at T0, 5 h and 10 h), at ``until``."""
    state = programmed(p, record=record)
    for hour in (0, 5, 10):
        state = apply(at(state, T0 + hour * HOUR), patient_bolus(p))
    return at(state, until)


def bridge_window(record: PatientRecord, since_s: int, volume: int | None = None) -> Case:
    """A bridge bolus ``since_s`` after diluting 1000 µg/mL to 500 (400 µg/day): the path's volume, or
    ``volume``, at the prescribed daily dose (no faster): only the window and the volume are at stake."""
    state = programmed(prescription(rate=400, concentration_ug_ml=1_000), record=record)
    diluted = refill_staged(state, volume=10_000, conc=500)
    state = at(apply(diluted, confirm(diluted, volume=10_000, conc=500)), T0 + since_s)
    assert state.prescription is not None
    size = state.path.volume_scaled // SCALE if volume is None else volume
    tip_scaled = state.path.ahead(size * SCALE, state.concentration_ug_ml)  # ng × 86 400
    duration = -(-tip_scaled * DAY // daily_dose_scaled(state.prescription))
    # (a path of two drugs pushed at the stronger one's pace brings the weaker one slowly: FLOW-001)
    return Case(acknowledging(bolus(size, duration, BolusKind.BRIDGE), "FLOW-001"), state)


def screening_record(record: PatientRecord, effect_s: int) -> PatientRecord:
    return replace(record, screening_dose_ng=300_000, screening_effect_s=effect_s)


def eos(record: PatientRecord) -> TherapyState:
    return end_of_service(programmed(record=record))


# TITR-001: a flex schedule of 20 µg/day (200 and 600 µL/day of 50 µg/mL, its peak 30 µg/day) is the
# reference, so that a new daily dose up to 26 µg/day (+30 %) never raises the peak (FLEX-003)
TITRATED = prescription(
    mode=PrescriptionMode.FLEX,
    concentration_ug_ml=50,
    steps=(FlexStep(start_s=0, rate_ul_day=200), FlexStep(start_s=DAY // 2, rate_ul_day=600)),
)


def titration(record: PatientRecord, ng_day: int) -> Case:
    return Case(stage(prescription_for_daily(ng_day)), programmed(TITRATED, record=record))


def high_dose(record: PatientRecord, current: int, new: int, policy: SafetyPolicy = POLICY) -> Case:
    """From ``current`` to ``new`` ng/day at 50 µg/mL (a full reservoir), committed; the limit at the group's
    ceiling."""
    ceiling = 2_000_000 if record.group is PatientGroup.ADULT else 1_000_000
    p = prescription_for_daily(current, max_daily_dose_ng=ceiling)
    state = programmed(p, record=record, history_days=1, reservoir_scaled=20_000 * SCALE)
    return committing(state, prescription_for_daily(new, max_daily_dose_ng=ceiling), policy=policy)


def decrease(record: PatientRecord, ng_day: int) -> Case:
    state = programmed(prescription(rate=400, concentration_ug_ml=50), record=record)
    return committing(state, prescription_for_daily(ng_day))


def second_raise(record: PatientRecord, since_s: int, *, dip: bool = False) -> Case:
    """800 µL/day raised to 850 at T0 (dipping to 840 an hour later), raised again ``since_s`` later."""
    state = apply(
        programmed(prescription(max_daily_dose_ng=900_000), record=record), SetRate(rate_ul_day=850)
    )
    if dip:
        state = apply(at(state, T0 + HOUR), SetRate(rate_ul_day=840))
    return Case(SetRate(rate_ul_day=850 if dip else 900), at(state, T0 + since_s))


def ramp(record: PatientRecord, ng_day: int) -> Case:
    """Resuming, after three days without drug, a prescription of ``ng_day`` committed while suspended
    (from 20 µg/day of 50 µg/mL)."""
    state = interrupted(3 * DAY, prescription(rate=400, concentration_ug_ml=50), record)
    staged = apply(state, stage(prescription_for_daily(ng_day)))
    return Case(Resume(), apply(staged, commit(staged)))


def clock_back(record: PatientRecord, seconds: int, idle_since: int, event_ago: int | None = None) -> Case:
    """Setting back by ``seconds`` the clock of an idle pump set up ``idle_since`` ago (with a recorded
    event, a threshold change, ``event_ago``)."""
    state = empty_pump(record, now=T0 - idle_since)
    if event_ago is not None:
        state = apply(at(state, T0 - event_ago), thresholds())
    return Case(SetClock(device_time=T0 - seconds), at(state, T0))


def residual_off(record: PatientRecord, held: int, gap: int, *, above: bool = False) -> Case:
    """A refill of 10 mL where ``held`` µL was expected back and ``gap`` µL less (more) was withdrawn."""
    state = programmed(record=record, reservoir_scaled=held * SCALE)
    return refilling(state, 10_000, 500, measured=held + gap if above else held - gap)


def overfill(record: PatientRecord, volume: int, short: int = 0) -> Case:
    """Staging ``volume`` µL when ``short`` µL less than expected was withdrawn."""
    state = apply(programmed(record=record), RefillBegin())
    assert state.refill is not None
    measured = state.refill.expected_residual_ul - short
    state = apply(state, RefillResidual(refill_id=rid(state), measured_ul=measured))
    return Case(RefillStageDrug(refill_id=rid(state), volume_ul=volume, concentration_ug_ml=500), state)


def tip_gap(record: PatientRecord, gap_s: int) -> Case:
    """Ending a session with saline at the tip for ``gap_s`` (2400 µL/day: 1/36 µL a second)."""
    state = programmed(prescription(rate=2_400, max_daily_dose_ng=1_500_000), record=record)
    return Case(SessionEnd(), saline_path(state, gap_s * 2_400))


def weak_tip(record: PatientRecord, conc: int) -> Case:
    """Ending a session with the path's 250 µL at ``conc`` µg/mL ahead of 2000 µg/mL (30 h at 200 µL/day)."""
    state = programmed(prescription(rate=200, concentration_ug_ml=2_000), record=record)
    return Case(SessionEnd(), saline_path(state, 250 * SCALE, conc))


STRONG = prescription(rate=200, concentration_ug_ml=2_000)  # 400 µg/day of 2000 µg/mL
SUSPEND = Suspend(duration_s=600, ack=ack("STOP-002"))


def suspended_into_overdose(record: PatientRecord) -> TherapyState:
    """1 mg/day for 2 h, suspended, then a 100 µg/day limit committed: resuming would exceed it (DOSE-001)."""
    state = programmed(prescription(rate=2_000, max_daily_dose_ng=1_000_000), record=record, history_days=0)
    state = apply(at(state, T0 + 2 * HOUR), Suspend(duration_s=0, ack=ack("STOP-002")))
    staged = apply(state, stage(prescription(rate=200, max_daily_dose_ng=100_000)))
    return apply(staged, commit(staged))


def bridged_dilution(record: PatientRecord) -> Case:
    """Cancelling the bridge of a 2000 -> 500 µg/mL dilution: the basal flow would push the old drug fast."""
    diluted = refill_staged(programmed(STRONG, record=record), volume=10_000, conc=500)
    bridged = apply(diluted, replace(confirm(diluted, volume=10_000, conc=500), bridge=True))
    assert bridged.bolus is not None
    return Case(BolusCancel(bolus_id=bridged.bolus.bolus_id), bridged)


def raised_then_relabelled(record: PatientRecord, command: Callable[[TherapyState], Case]) -> Case:
    """A prescription with a 1.5 mg/day limit, the record of an adult of ``record``'s origin just changed to
    ``record`` (a child): the next reprogramming meets the child's ceiling."""
    p = prescription(max_daily_dose_ng=1_500_000)
    state = programmed(p, record=with_group(record, PatientGroup.ADULT))
    return command(apply(state, set_record(record)))


def phase(record: PatientRecord, to: Phase) -> PatientRecord:
    return replace(record, phase=to)


def implanted_with_catheter(record: PatientRecord) -> TherapyState:
    """An implanted pump just set up: 250 µL of saline in its path (new tubing and a 120 µL catheter)."""
    state = empty_pump(record)
    return apply(state, RecordProcedure(procedure=Procedure.PUMP_IMPLANT, catheter_volume_ul=120))


def revised(record: PatientRecord) -> TherapyState:
    """A running pump after a catheter revision: a new 120 µL catheter full of saline."""
    state = programmed(record=record)
    return apply(state, RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=120))


def derived_profile(state: TherapyState, **changes: Any) -> TherapyState:
    """``state`` on a profile that differs from every shipped one (whose rate step is 1 µL/day, flex steps 10:
    RATE-002 and FLEX-001's upper bound are pinned on a derived profile)."""
    return replace(state, profile=replace(state.profile, **changes))


def no_prescription(record: PatientRecord, volume: int) -> Case:
    """A clinician bolus of ``volume`` µL on a pump with no prescription in force that delivered 1.9 mg at
    the tip in the last 12 h: the limit falls back to the adult ceiling."""
    state = replace(empty_pump(record), delivered=(Flow(T0 - DAY // 2, T0, 7_600, 500),))
    return Case(bolus(volume), state)


def rolling_pair(record: PatientRecord, since: int) -> Case:
    """Two 150 µg boluses (1 h each) ``since`` s apart on 450 µg/day, limit 749.999 µg: together in a window
    only while the second ends within 24 h of the first's start."""
    p = prescription(rate=900, max_bolus_ng=200_000, max_daily_dose_ng=749_999)
    state = apply(programmed(p, record=record), bolus(300))
    return Case(bolus(300), at(state, T0 + since))


def delivered_a_day_ago(record: PatientRecord, ended: int) -> Case:
    state = apply(programmed(prescription(max_bolus_ng=200_000), record=record), bolus(300))
    return Case(stage(prescription(max_daily_dose_ng=400_041)), at(state, T0 + HOUR + ended))


def raised_after_a_bolus(record: PatientRecord) -> Case:
    """A 200 µg bolus an hour ago, then 400 -> 450 µg/day: a window holds 648 µg, the limit is 600."""
    state = apply(programmed(prescription(max_bolus_ng=200_000), record=record), bolus(400))
    return Case(SetRate(rate_ul_day=900), at(state, T0 + HOUR))


def near_max(record: PatientRecord) -> TherapyState:
    return programmed(prescription(rate=1_150), record=record)  # 575 µg/day of at most 600


def tip_bolus(record: PatientRecord, ng: int) -> Case:
    """A clinician bolus bringing exactly ``ng`` to the tip (the prescription allows 250 µg)."""
    p = prescription(max_bolus_ng=250_000, max_daily_dose_ng=900_000)
    volume, state = with_tip_dose(programmed(p, record=record), ng)
    return Case(bolus(volume), state)


def tip_patient_bolus(record: PatientRecord, ng: int) -> Case:
    """The prescribed patient bolus bringing exactly ``ng`` to the tip (the prescription allows 250 µg)."""
    volume = -(-ng // 500)
    p = prescription(
        max_bolus_ng=250_000,
        max_daily_dose_ng=900_000,
        patient=patient_policy(volume_ul=volume, duration_s=HOUR),
    )
    _, state = with_tip_dose(programmed(p, record=record), ng)
    return Case(patient_bolus(p), state)


def periodic(volume: int, duration: int = HOUR, conc: int = 500, **changes: Any) -> Prescription:
    """A day of 800 µL (400 µg at 500 µg/mL): a periodic bolus of ``volume`` at 01:00, the rest basal."""
    b = PeriodicBolus(start_s=HOUR, volume_ul=volume, duration_s=duration)
    return prescription(rate=800 - volume, concentration_ug_ml=conc, boluses=(b,), **changes)


def periodic_rate(record: PatientRecord, rate: int) -> Case:
    b = bolus_at_rate(rate)
    p = periodic(b.volume_ul, b.duration_s, conc=50)
    return Case(stage(p), programmed(prescription(concentration_ug_ml=50), record=record))


def flex_of(n: int) -> Prescription:
    """A flex prescription of ``n`` hourly steps of 800 µL/day (n = 1: one step)."""
    return prescription(mode=PrescriptionMode.FLEX, steps=steps_of(*(i * HOUR for i in range(n))))


def residual_recorded(record: PatientRecord) -> TherapyState:
    state = apply(programmed(record=record), RefillBegin())
    assert state.refill is not None
    return apply(state, RefillResidual(refill_id=rid(state), measured_ul=state.refill.expected_residual_ul))


def expired(record: PatientRecord) -> TherapyState:
    return programmed(record=record, filled_at=T0 - 77 * DAY)


def saline_ahead(record: PatientRecord) -> TherapyState:
    """A running pump (800 µL/day) with two hours of saline at the tip of its path."""
    return saline_path(programmed(record=record), 2 * HOUR * 800)


def suspended(state: TherapyState) -> TherapyState:
    return apply(state, Suspend(duration_s=0, ack=ack("STOP-002")))


def stopped(record: PatientRecord) -> TherapyState:
    """Stopped (by an MRI) three days ago: programming it starts delivery again."""
    return interrupted(3 * DAY, record=record, stopped=True)


def other_phase(record: PatientRecord) -> SetPatientRecord:
    """A phase change that is not one step forward: screening to therapy, or back to screening."""
    to = Phase.THERAPY if record.phase is Phase.SCREENING else Phase.SCREENING
    return set_record(phase(record, to))


def ids(*rules: str) -> frozenset[str]:
    return frozenset(rules)


def tighten_to(param: str, value: int, accepted: int, refused: int) -> tuple[Tightening, ...]:
    """``param`` tightened to ``value`` moves the edge to ``accepted`` / ``refused``."""
    return (Tightening(param, value, accepted, refused),)


# --- the table ----------------------------------------------------------------------------------------------

SETRATE_KEEPS = "SetRate keeps the schedule's shape: one continuous step, from midnight"

TABLE: dict[str, Row] = {
    "DOSE-001": Row(
        "limit",
        (*STARTS_DELIVERY, BolusCancel),
        CATEGORIES,
        THERAPY,
        boundaries=(
            # 450 µg/day delivered in the last 24 h, a 150 µg bolus planned: 600 µg in a window
            Boundary(
                "max-daily-ng",
                lambda r, v: Case(
                    bolus(300),
                    programmed(prescription(rate=900, max_bolus_ng=200_000, max_daily_dose_ng=v), record=r),
                ),
                600_000,
                599_999,
            ),
            Boundary("delivered-bolus-leaves-the-window-s", rolling_pair, DAY - HOUR + 1, DAY - HOUR),
            # a 150 µg bolus that ended this long ago, and a new limit of 400.041 µg on 400 µg/day: its last
            # second (41.7 ng) is in the window that starts 24 h ago until it ended 24 h ago
            Boundary("delivered-24-h-ago-s", delivered_a_day_ago, DAY, DAY - 1),
            # no prescription in force: the adult ceiling (policy's if lower) is the limit
            Boundary(
                "no-prescription-ceiling-ul",
                no_prescription,
                200,
                201,
                tighten=tighten_to("DOSE-003.adult_ceiling_ng_day", 1_950_000, 100, 101),
                categories=ADULTS,
            ),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription(rate=700, max_daily_dose_ng=380_000)), programmed(record=r))
            ),
            CommitPrescription: Breaks(
                lambda r: committing(programmed(record=r), prescription(rate=700, max_daily_dose_ng=380_000))
            ),
            SetRate: Breaks(raised_after_a_bolus),
            # 1 mg/day diluted 1000 -> 500 µg/mL without a bridge: 1.125 mg at the tip in a day (limit 1.1)
            RefillConfirm: Breaks(
                lambda r: refilling(
                    programmed(
                        prescription(rate=1_000, concentration_ug_ml=1_000, max_daily_dose_ng=1_100_000),
                        record=r,
                    ),
                    10_000,
                    500,
                ),
                categories=ADULTS,
            ),
            BolusStart: Breaks(
                lambda r: Case(bolus(302), programmed(prescription(rate=900, max_bolus_ng=200_000), record=r))
            ),
            Resume: Breaks(lambda r: Case(Resume(), suspended_into_overdose(r))),
            Suspend: Breaks(lambda r: Case(SUSPEND, suspended_into_overdose(r))),
            BolusCancel: Breaks(bridged_dilution),
        },
    ),
    "DOSE-002": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        boundaries=(
            # its own 400 µg/day: above its own maximum, the rolling window is too (DOSE-001)
            Boundary(
                "own-max-ng",
                lambda r, v: Case(stage(prescription(max_daily_dose_ng=v)), programmed(record=r)),
                400_000,
                399_999,
                also=ids("DOSE-001"),
            ),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription(rate=1_201)), near_max(r)), also=ids("DOSE-001")
            ),
            CommitPrescription: Breaks(
                lambda r: committing(near_max(r), prescription(rate=1_201)), also=ids("DOSE-001")
            ),
            SetRate: Breaks(lambda r: Case(SetRate(rate_ul_day=1_201), near_max(r)), also=ids("DOSE-001")),
            # a refill rescales to the same daily dose: only one in force above its maximum (put in force
            # without the rules) is above it again
            RefillConfirm: Breaks(
                lambda r: refilling(programmed(prescription(rate=1_300), record=r), 5_000, 1_000, "FLOW-001"),
                also=ids("DOSE-001"),
            ),
        },
    ),
    "DOSE-003": Row(
        "limit",
        (*PRESCRIBING, SetPatientRecord),
        CATEGORIES,
        THERAPY,
        params=("adult_ceiling_ng_day", "child_ceiling_ng_day"),
        boundaries=(
            Boundary(
                "adult-ceiling-ng",
                lambda r, v: Case(stage(prescription(max_daily_dose_ng=v)), programmed(record=r)),
                2_000_000,
                2_000_001,
                tighten=tighten_to("DOSE-003.adult_ceiling_ng_day", 1_500_000, 1_500_000, 1_500_001),
                categories=ADULTS,
            ),
            Boundary(
                "child-ceiling-ng",
                lambda r, v: Case(stage(prescription(max_daily_dose_ng=v)), programmed(record=r)),
                1_000_000,
                1_000_001,
                tighten=tighten_to("DOSE-003.child_ceiling_ng_day", 800_000, 800_000, 800_001),
                categories=CHILDREN,
            ),
            # a child's record changed to an adult's: the child ceiling holds for 24 h
            Boundary(
                "child-ceiling-after-relabel-s",
                lambda r, v: Case(
                    stage(prescription(max_daily_dose_ng=2_000_000)),
                    relabelled(r, with_group(r, PatientGroup.CHILD), v),
                ),
                DAY,
                DAY - 1,
                categories=ADULTS,
            ),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription(max_daily_dose_ng=2_000_001)), programmed(record=r))
            ),
            CommitPrescription: Breaks(
                lambda r: committing(programmed(record=r), prescription(max_daily_dose_ng=2_000_001))
            ),
            # an adult's 1.5 mg/day limit, the record just changed to a child's: reprogramming meets it
            SetRate: Breaks(
                lambda r: raised_then_relabelled(r, lambda s: Case(SetRate(rate_ul_day=810), s)),
                categories=CHILDREN,
            ),
            RefillConfirm: Breaks(
                lambda r: raised_then_relabelled(r, lambda s: refilling(s, 5_000, 1_000, "FLOW-001")),
                categories=CHILDREN,
            ),
            # the record changed to a child's while an adult's 1.5 mg/day limit is in force: refused
            SetPatientRecord: Breaks(
                lambda r: Case(
                    SetPatientRecord(group=PatientGroup.CHILD, origin=r.origin, risks=r.risks, phase=r.phase),
                    programmed(prescription(max_daily_dose_ng=1_500_000), record=r),
                ),
                categories=ADULTS,
            ),
        },
    ),
    "BOL-001": Row(
        "limit",
        (BolusStart, *PRESCRIBING),
        CATEGORIES,
        (Phase.SCREENING, Phase.THERAPY),
        params=("absolute_max_bolus_ng",),
        boundaries=(
            Boundary(
                "clinician-prescription-max-ng",
                lambda r, v: Case(bolus(100), programmed(prescription(max_bolus_ng=v), record=r)),
                50_000,
                49_999,
                phases=THERAPY,
            ),
            Boundary(
                "clinician-absolute-max-ng-at-tip",
                tip_bolus,
                200_000,
                200_001,
                tighten=tighten_to("BOL-001.absolute_max_bolus_ng", 150_000, 150_000, 150_001),
                phases=THERAPY,
            ),
            Boundary(
                "patient-prescription-max-ng",
                lambda r, v: Case(
                    patient_bolus(prescription()), programmed(prescription(max_bolus_ng=v), record=r)
                ),
                5_000,
                4_999,
                phases=THERAPY,
            ),
            Boundary(
                "patient-absolute-max-ng-at-tip",
                tip_patient_bolus,
                200_000,
                200_001,
                tighten=tighten_to("BOL-001.absolute_max_bolus_ng", 150_000, 150_000, 150_001),
                phases=THERAPY,
            ),
            Boundary(
                "periodic-prescription-max-ng",
                lambda r, v: Case(stage(periodic(100, max_bolus_ng=v)), programmed(record=r)),
                50_000,
                49_999,
                phases=THERAPY,
            ),
            # a periodic bolus is volume × concentration: 500 ng a µL here (50 at the least)
            Boundary(
                "periodic-absolute-max-ul",
                lambda r, v: Case(
                    stage(periodic(v, max_bolus_ng=250_000, max_daily_dose_ng=900_000)), programmed(record=r)
                ),
                400,
                401,
                tighten=tighten_to("BOL-001.absolute_max_bolus_ng", 150_000, 300, 301),
                phases=THERAPY,
            ),
            # ... so its 1 ng past the absolute maximum is a policy's maximum 1 ng under it
            Boundary(
                "periodic-200ug-under-absolute-max-ng",
                lambda r, v: Case(
                    stage(periodic(400, max_bolus_ng=250_000, max_daily_dose_ng=900_000)),
                    programmed(record=r),
                    policy(BOL_001__absolute_max_bolus_ng=v),
                ),
                200_000,
                199_999,
                phases=THERAPY,
            ),
            Boundary(
                "screening-dose-under-absolute-max-ng",
                lambda r, v: Case(
                    bolus(1_000, 4 * HOUR),
                    empty_pump(r, concentration_ug_ml=50),
                    policy(BOL_001__absolute_max_bolus_ng=v),
                ),
                50_000,
                49_999,
                phases=(Phase.SCREENING,),
            ),
        ),
        breaks={
            BolusStart: Breaks(lambda r: Case(bolus(101), programmed(record=r)), phases=THERAPY),
            StagePrescription: Breaks(
                lambda r: Case(stage(periodic(101)), programmed(record=r)), phases=THERAPY
            ),
            CommitPrescription: Breaks(
                lambda r: committing(programmed(record=r), periodic(101)), phases=THERAPY
            ),
            # a 50 µg periodic bolus in force, a policy whose absolute maximum is 40 µg
            SetRate: Breaks(
                lambda r: Case(
                    SetRate(rate_ul_day=710),
                    programmed(periodic(100), record=r),
                    policy(BOL_001__absolute_max_bolus_ng=40_000),
                ),
                phases=THERAPY,
            ),
            RefillConfirm: Breaks(
                lambda r: refilling(programmed(periodic(100), record=r), 5_000, 1_000, "FLOW-001")._replace(
                    policy=policy(BOL_001__absolute_max_bolus_ng=40_000)
                ),
                phases=THERAPY,
            ),
        },
    ),
    "BOL-002": Row(
        "limit",
        (BolusStart,),
        CATEGORIES,
        (Phase.SCREENING,),
        params=("interval_s",),
        boundaries=(
            # 75 µg the day after 50 µg without response
            Boundary(
                "interval-s",
                lambda r, v: Case(bolus(1_500, 4 * HOUR), first_screening_dose(r, ScreeningResponse.NONE, v)),
                DAY,
                DAY - 1,
                tighten=tighten_to("BOL-002.interval_s", 2 * DAY, 2 * DAY, 2 * DAY - 1),
            ),
            # 50 µg (1 mL of 50 µg/mL) first: one of the label's doses
            Boundary(
                "label-dose-ul",
                lambda r, v: Case(bolus(v, 4 * HOUR), empty_pump(r, concentration_ug_ml=50)),
                1_000,
                1_001,
            ),
        ),
        breaks={
            BolusStart: Breaks(lambda r: Case(bolus(1_500, 4 * HOUR), empty_pump(r, concentration_ug_ml=50)))
        },
    ),
    "BOL-003": Row(
        "limit",
        (BolusStart, *PRESCRIBING),
        CATEGORIES,
        PHASES,
        boundaries=(
            Boundary(
                "clinician-rate-ul-day",
                lambda r, v: Case(
                    bolus_at_rate(v), programmed(prescription(concentration_ug_ml=50), record=r)
                ),
                24_000,
                24_001,
                phases=THERAPY,
            ),
            Boundary(
                "screening-dose-duration-s",
                lambda r, v: Case(bolus(1_000, v), empty_pump(r, concentration_ug_ml=50)),
                3_600,
                3_599,
                phases=(Phase.SCREENING,),
            ),
            Boundary(
                "priming-duration-s",
                lambda r, v: Case(bolus(250, v, BolusKind.PRIMING), implanted_with_catheter(r)),
                900,
                899,
                phases=(Phase.IMPLANTED,),
            ),
            Boundary("periodic-rate-ul-day", periodic_rate, 24_000, 24_001, phases=THERAPY),
        ),
        breaks={
            BolusStart: Breaks(lambda r: Case(bolus(100, 60), programmed(record=r)), phases=THERAPY),
            StagePrescription: Breaks(lambda r: periodic_rate(r, 24_001), phases=THERAPY),
            CommitPrescription: Breaks(
                lambda r: committing(
                    programmed(prescription(concentration_ug_ml=50), record=r), periodic(667, 2_401, conc=50)
                ),
                phases=THERAPY,
            ),
            # a too fast periodic bolus in force (put in force without the rules)
            SetRate: Breaks(
                lambda r: Case(SetRate(rate_ul_day=140), programmed(periodic(667, 2_401, conc=50), record=r)),
                phases=THERAPY,
            ),
            # diluted 500 -> 50 µg/mL: a periodic 101 µL in an hour becomes 1010 µL (24 240 µL/day)
            RefillConfirm: Breaks(
                lambda r: refilling(programmed(periodic(101, max_bolus_ng=60_000), record=r), 20_000, 50),
                categories=(ADULT_SPINAL,),
                phases=THERAPY,
            ),
        },
    ),
    "BOL-004": Row(
        "limit",
        (BolusStart,),
        CATEGORIES,
        THERAPY,
        boundaries=(
            # a 50 µL bolus over the hour from T0
            Boundary(
                "running-bolus-ends-s",
                lambda r, v: Case(bolus(20), at(apply(programmed(record=r), bolus(50)), T0 + v)),
                HOUR,
                HOUR - 1,
            ),
        ),
        breaks={BolusStart: Breaks(lambda r: Case(bolus(20), apply(programmed(record=r), bolus(50))))},
    ),
    "PBOL-001": Row(
        "limit",
        (BolusStart,),
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "lockout-s",
                lambda r, v: Case(
                    patient_bolus(prescription()),
                    at(apply(programmed(record=r), patient_bolus(prescription())), T0 + v),
                ),
                4 * HOUR,
                4 * HOUR - 1,
            ),
        ),
        breaks={
            BolusStart: Breaks(
                lambda r: Case(
                    patient_bolus(prescription()),
                    at(apply(programmed(record=r), patient_bolus(prescription())), T0 + HOUR),
                )
            )
        },
    ),
    "PBOL-002": Row(
        "limit",
        (BolusStart,),
        CATEGORIES,
        THERAPY,
        boundaries=(
            # three patient boluses (T0, 5 h, 10 h) of at most three a day: the first leaves the 24 h
            Boundary(
                "fourth-in-24-h-s",
                lambda r, v: Case(
                    patient_bolus(prescription()), three_patient_boluses(r, prescription(), T0 + v)
                ),
                DAY,
                DAY - 1,
            ),
            Boundary(
                "max-per-day",
                lambda r, v: Case(
                    patient_bolus(prescription()),
                    three_patient_boluses(
                        r, prescription(patient=patient_policy(max_per_day=v)), T0 + 15 * HOUR
                    ),
                ),
                4,
                3,
            ),
        ),
        breaks={
            BolusStart: Breaks(
                lambda r: Case(
                    patient_bolus(prescription()), three_patient_boluses(r, prescription(), T0 + 15 * HOUR)
                )
            )
        },
    ),
    "PBOL-003": Row(
        "limit",
        (BolusStart,),
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "volume-above-ul",
                lambda r, v: Case(bolus(v, 600, BolusKind.PATIENT), programmed(record=r)),
                10,
                11,
            ),
            Boundary(
                "volume-below-ul",
                lambda r, v: Case(bolus(v, 600, BolusKind.PATIENT), programmed(record=r)),
                10,
                9,
            ),
            Boundary(
                "duration-above-s",
                lambda r, v: Case(bolus(10, v, BolusKind.PATIENT), programmed(record=r)),
                600,
                601,
            ),
            Boundary(
                "duration-below-s",
                lambda r, v: Case(bolus(10, v, BolusKind.PATIENT), programmed(record=r)),
                600,
                599,
            ),
        ),
        breaks={
            # no prescription enables patient boluses (one with none a day meets PBOL-002 too)
            BolusStart: Breaks(lambda r: Case(patient_bolus(prescription()), empty_pump(r)))
        },
    ),
    "TITR-001": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        params=("spinal_pct", "cerebral_pct", "child_pct"),
        boundaries=(
            # from 20 µg/day (flex, its peak 30 µg/day), at 1 ng/day
            Boundary(
                "spinal-30-pct-ng",
                titration,
                26_000,
                26_001,
                tighten=tighten_to("TITR-001.spinal_pct", 20, 24_000, 24_001),
                categories=(ADULT_SPINAL,),
            ),
            Boundary(
                "cerebral-15-pct-ng",
                titration,
                23_000,
                23_001,
                tighten=tighten_to("TITR-001.cerebral_pct", 10, 22_000, 22_001),
                categories=(ADULT_CEREBRAL,),
            ),
            Boundary(
                "child-15-pct-ng",
                titration,
                23_000,
                23_001,
                tighten=tighten_to("TITR-001.child_pct", 10, 22_000, 22_001),
                categories=CHILDREN,
            ),
            # the strictest category of the last 24 h: a child's (or cerebral) record relabelled adult spinal
            Boundary(
                "child-step-after-relabel-s",
                lambda r, v: Case(
                    stage(prescription_for_daily(26_000)),
                    relabelled(r, with_group(r, PatientGroup.CHILD), v, TITRATED),
                ),
                DAY,
                DAY - 1,
                categories=(ADULT_SPINAL,),
            ),
            Boundary(
                "cerebral-step-after-relabel-s",
                lambda r, v: Case(
                    stage(prescription_for_daily(26_000)),
                    relabelled(r, with_group(r, PatientGroup.ADULT, Origin.CEREBRAL), v, TITRATED),
                ),
                DAY,
                DAY - 1,
                categories=(ADULT_SPINAL,),
            ),
        ),
        breaks={
            StagePrescription: Breaks(lambda r: titration(r, 30_000)),
            CommitPrescription: Breaks(
                lambda r: committing(programmed(TITRATED, record=r), prescription_for_daily(30_000))
            ),
            # +15.1 %: the spinal 30 % would meet FLEX-003's peak limit at the same time
            SetRate: Breaks(
                lambda r: Case(
                    SetRate(rate_ul_day=921), programmed(prescription(max_daily_dose_ng=900_000), record=r)
                ),
                categories=(ADULT_CEREBRAL, *CHILDREN),
            ),
            # 400 µg/day of 2000 µg/mL diluted to 500 without a bridge: 775 µg at the tip in a day (+94 %)
            RefillConfirm: Breaks(
                lambda r: refilling(
                    programmed(replace(STRONG, max_daily_dose_ng=900_000), record=r), 10_000, 500
                ),
                categories=ADULTS,
            ),
        },
    ),
    "TITR-002": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        params=("interval_s",),
        boundaries=(
            Boundary(
                "second-raise-s",
                second_raise,
                DAY,
                DAY - 1,
                tighten=tighten_to("TITR-002.interval_s", 2 * DAY, 2 * DAY, 2 * DAY - 1),
            ),
            Boundary("raise-after-a-dip-s", lambda r, v: second_raise(r, v, dip=True), DAY, DAY - 1),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(
                    stage(prescription(rate=900, max_daily_dose_ng=900_000)), second_raise(r, HOUR).state
                )
            ),
            CommitPrescription: Breaks(
                lambda r: committing(
                    second_raise(r, HOUR).state, prescription(rate=900, max_daily_dose_ng=900_000)
                )
            ),
            SetRate: Breaks(lambda r: second_raise(r, HOUR)),
            # raised 950 -> 1000 µg/day, then diluted 1000 -> 500 µg/mL without a bridge: more at the tip
            RefillConfirm: Breaks(
                lambda r: refilling(
                    at(
                        apply(
                            programmed(
                                prescription(
                                    rate=950, concentration_ug_ml=1_000, max_daily_dose_ng=1_500_000
                                ),
                                record=r,
                            ),
                            SetRate(rate_ul_day=1_000),
                        ),
                        T0 + HOUR,
                    ),
                    10_000,
                    500,
                ),
                categories=(ADULT_SPINAL,),
            ),
        },
    ),
    "TITR-003": Row(
        "acknowledge",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        params=("pct",),
        boundaries=(
            Boundary(
                "adult-20-pct-above-range-ng",
                lambda r, v: high_dose(r, 800_000, v),
                960_000,
                960_001,
                tighten=tighten_to("TITR-003.pct", 10, 880_000, 880_001),
                categories=(ADULT_SPINAL,),
            ),
            Boundary(
                "adult-maintenance-range-ng",
                lambda r, v: high_dose(r, 650_000, v),
                800_000,
                800_001,
                categories=(ADULT_SPINAL,),
            ),
            # cerebral origin and children titrate at most 15 %: their 20 % step is a TITR-001 refusal, so
            # TITR-003 is pinned under a 10 % policy
            Boundary(
                "adult-10-pct-policy-ng",
                lambda r, v: high_dose(r, 900_000, v, policy(TITR_003__pct=10)),
                990_000,
                990_001,
                categories=ADULTS,
            ),
            Boundary(
                "child-maintenance-range-ng",
                lambda r, v: high_dose(r, 270_000, v, policy(TITR_003__pct=10)),
                300_000,
                300_001,
                categories=CHILDREN,
            ),
            Boundary(
                "child-10-pct-policy-ng",
                lambda r, v: high_dose(r, 320_000, v, policy(TITR_003__pct=10)),
                352_000,
                352_001,
                categories=CHILDREN,
            ),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(
                    stage(prescription(rate=1_921, max_daily_dose_ng=2_000_000)),
                    programmed(prescription(rate=1_600, max_daily_dose_ng=2_000_000), record=r),
                ),
                categories=(ADULT_SPINAL,),
            ),
            CommitPrescription: Breaks(
                lambda r: committing(
                    programmed(prescription(rate=1_600, max_daily_dose_ng=2_000_000), record=r),
                    prescription(rate=1_921, max_daily_dose_ng=2_000_000),
                ),
                categories=(ADULT_SPINAL,),
            ),
            SetRate: Breaks(
                lambda r: Case(
                    SetRate(rate_ul_day=1_921),
                    programmed(prescription(rate=1_600, max_daily_dose_ng=2_000_000), record=r),
                ),
                categories=(ADULT_SPINAL,),
            ),
            # 1 mg/day of 2000 µg/mL diluted to 1000 without a bridge: 1.25 mg at the tip in a day (+25 %)
            RefillConfirm: Breaks(
                lambda r: refilling(
                    programmed(
                        prescription(rate=500, concentration_ug_ml=2_000, max_daily_dose_ng=1_500_000),
                        record=r,
                    ),
                    10_000,
                    1_000,
                ),
                categories=(ADULT_SPINAL,),
            ),
        },
    ),
    "DECR-001": Row(
        "acknowledge",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        params=("max_decrease_pct",),
        boundaries=(
            # from 20 µg/day (400 µL/day of 50 µg/mL)
            Boundary(
                "30-pct-below-ng",
                decrease,
                14_000,
                13_999,
                tighten=tighten_to("DECR-001.max_decrease_pct", 10, 18_000, 17_999),
            ),
        ),
        breaks={
            StagePrescription: Breaks(lambda r: Case(stage(prescription(rate=559)), programmed(record=r))),
            CommitPrescription: Breaks(lambda r: committing(programmed(record=r), prescription(rate=559))),
            SetRate: Breaks(lambda r: Case(SetRate(rate_ul_day=559), programmed(record=r))),
            # a refill keeps the daily dose but for rounding to the rate step: 79 µL/day of 50 µg/mL become
            # 1 µL/day of 2000 (-49 %), below the profile's minimum
            RefillConfirm: Breaks(
                lambda r: refilling(
                    programmed(prescription(rate=79, concentration_ug_ml=50), record=r), 50, 2_000, "FLOW-001"
                ),
                also=ids("RATE-001"),
            ),
        },
    ),
    "FLEX-003": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        params=("peak_pct",),
        boundaries=(
            # 800 µL/day all day reshaped, at the same daily dose, into a higher peak
            Boundary(
                "peak-30-pct-ul-day",
                lambda r, v: Case(stage(flex(1_600 - v, v)), programmed(record=r)),
                1_040,
                1_041,
                tighten=tighten_to("FLEX-003.peak_pct", 10, 880, 881),
            ),
        ),
        breaks={
            StagePrescription: Breaks(lambda r: Case(stage(flex(559, 1_041)), programmed(record=r))),
            CommitPrescription: Breaks(lambda r: committing(programmed(record=r), flex(559, 1_041))),
            # a continuous rate's peak is its daily dose: past 30 % it is TITR-001's too, so a 10 % policy
            SetRate: Breaks(
                lambda r: Case(SetRate(rate_ul_day=881), programmed(record=r), policy(FLEX_003__peak_pct=10))
            ),
        },
        unbreakable={RefillConfirm: "a refill rescales the rates down to the step: the peak never rises"},
    ),
    "RESTART-001": Row(
        "acknowledge",
        STARTS_DELIVERY,
        CATEGORIES,
        THERAPY,
        params=("max_gap_s", "ramp_pct"),
        boundaries=(
            Boundary(
                "gap-s",
                interruption_restarted,
                2 * DAY,
                2 * DAY + 1,
                tighten=tighten_to("RESTART-001.max_gap_s", DAY, DAY, DAY + 1),
            ),
            # three days without drug, restarting 20 µg/day (50 µg/mL) at a new daily dose
            Boundary(
                "ramp-50-pct-ng",
                ramp,
                10_000,
                10_001,
                tighten=tighten_to("RESTART-001.ramp_pct", 25, 5_000, 5_001),
            ),
        ),
        breaks={
            StagePrescription: Breaks(lambda r: Case(stage(prescription()), stopped(r))),
            CommitPrescription: Breaks(lambda r: committing(stopped(r), prescription())),
            SetRate: Breaks(lambda r: Case(SetRate(rate_ul_day=800), stopped(r))),
            RefillConfirm: Breaks(lambda r: refilling(stopped(r), 5_000, 1_000, "FLOW-001")),
            # (a bolus on a stopped pump: nothing follows it at the tip, FLOW-001)
            BolusStart: Breaks(lambda r: Case(acknowledging(bolus(20), "FLOW-001"), stopped(r))),
            Resume: Breaks(lambda r: Case(Resume(), interrupted(3 * DAY, record=r))),
            # a timed suspension resumes by itself: in 10 min at the full dose after three days without drug
            # (fixed: a timed suspension resumes by itself, so it is checked like a Resume)
            Suspend: Breaks(lambda r: Case(SUSPEND, interrupted(3 * DAY, record=r))),
        },
    ),
    "RATE-001": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "min-ul-day",
                lambda r, v: Case(SetRate(rate_ul_day=v), programmed(prescription(rate=60), record=r)),
                48,
                47,
            ),
            # 24 mL/day of the weakest drug is 1.2 mg/day: above a child's ceiling
            Boundary(
                "max-ul-day",
                lambda r, v: Case(
                    SetRate(rate_ul_day=v),
                    programmed(
                        prescription(rate=21_000, concentration_ug_ml=50, max_daily_dose_ng=1_300_000),
                        record=r,
                        history_days=0,
                    ),
                ),
                24_000,
                24_001,
                categories=ADULTS,
            ),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription(rate=47)), programmed(prescription(rate=60), record=r))
            ),
            CommitPrescription: Breaks(
                lambda r: committing(programmed(prescription(rate=60), record=r), prescription(rate=47))
            ),
            SetRate: Breaks(
                lambda r: Case(SetRate(rate_ul_day=47), programmed(prescription(rate=60), record=r))
            ),
            # 100 µL/day of 500 µg/mL refilled with 2000: 25 µL/day
            RefillConfirm: Breaks(
                lambda r: refilling(programmed(prescription(rate=100), record=r), 1_500, 2_000, "FLOW-001")
            ),
        },
    ),
    "RATE-002": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "step-5-ul-day",
                lambda r, v: Case(
                    SetRate(rate_ul_day=v), derived_profile(programmed(record=r), rate_step_ul_day=5)
                ),
                805,
                806,
            ),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(
                    stage(prescription(rate=806)), derived_profile(programmed(record=r), rate_step_ul_day=5)
                )
            ),
            CommitPrescription: Breaks(
                lambda r: committing(
                    derived_profile(programmed(record=r), rate_step_ul_day=5), prescription(rate=806)
                )
            ),
            SetRate: Breaks(
                lambda r: Case(
                    SetRate(rate_ul_day=806), derived_profile(programmed(record=r), rate_step_ul_day=5)
                )
            ),
        },
        unbreakable={RefillConfirm: "a refill rescales the rates rounding down to the rate step"},
    ),
    "FLEX-001": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        boundaries=(
            # the wire carries at most 10 steps, every shipped profile allows 10: a profile of 4
            Boundary(
                "most-steps",
                lambda r, v: Case(stage(flex_of(v)), derived_profile(programmed(record=r), max_flex_steps=4)),
                4,
                5,
            ),
            Boundary("fewest-flex-steps", lambda r, v: Case(stage(flex_of(v)), programmed(record=r)), 2, 1),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription(steps=steps_of(0, HOUR))), programmed(record=r))
            ),
            CommitPrescription: Breaks(
                lambda r: committing(programmed(record=r), prescription(steps=steps_of(0, HOUR)))
            ),
            # a one-step flex schedule in force (without the rules), rescaled by a refill
            RefillConfirm: Breaks(
                lambda r: refilling(programmed(flex_of(1), record=r), 5_000, 1_000, "FLOW-001")
            ),
        },
        unbreakable={SetRate: SETRATE_KEEPS},
    ),
    "FLEX-002": Row(
        "limit",
        PRESCRIBING,
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "first-step-at-midnight-s",
                lambda r, v: Case(
                    stage(prescription(mode=PrescriptionMode.FLEX, steps=steps_of(v, HOUR))),
                    programmed(record=r),
                ),
                0,
                1,
            ),
            Boundary(
                "starts-increase-s",
                lambda r, v: Case(
                    stage(prescription(mode=PrescriptionMode.FLEX, steps=steps_of(0, v))),
                    programmed(record=r),
                ),
                1,
                0,
            ),
        ),
        breaks={
            StagePrescription: Breaks(
                lambda r: Case(
                    stage(prescription(mode=PrescriptionMode.FLEX, steps=steps_of(60, HOUR))),
                    programmed(record=r),
                )
            ),
            CommitPrescription: Breaks(
                lambda r: committing(
                    programmed(record=r), prescription(mode=PrescriptionMode.FLEX, steps=steps_of(60, HOUR))
                )
            ),
            RefillConfirm: Breaks(
                lambda r: refilling(
                    programmed(prescription(mode=PrescriptionMode.FLEX, steps=steps_of(60, HOUR)), record=r),
                    5_000,
                    1_000,
                    "FLOW-001",
                )
            ),
        },
        unbreakable={SetRate: SETRATE_KEEPS},
    ),
    "DRUG-001": Row(
        "limit",
        (*PRESCRIBING, RefillStageDrug),
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "listed-ug-ml",
                lambda r, v: Case(
                    RefillStageDrug(
                        refill_id=rid(residual_recorded(r)), volume_ul=10_000, concentration_ug_ml=v
                    ),
                    residual_recorded(r),
                ),
                500,
                501,
            ),
        ),
        breaks={
            # a pump filled with 600 µg/mL (not in the table)
            StagePrescription: Breaks(
                lambda r: Case(
                    stage(prescription(concentration_ug_ml=600)), empty_pump(r, concentration_ug_ml=600)
                )
            ),
            CommitPrescription: Breaks(
                lambda r: committing(
                    empty_pump(r, concentration_ug_ml=600), prescription(concentration_ug_ml=600)
                )
            ),
            SetRate: Breaks(
                lambda r: Case(
                    SetRate(rate_ul_day=810), programmed(prescription(concentration_ug_ml=600), record=r)
                )
            ),
            RefillConfirm: Breaks(lambda r: refilling(programmed(record=r), 5_000, 600)),
            RefillStageDrug: Breaks(
                lambda r: Case(
                    RefillStageDrug(
                        refill_id=rid(residual_recorded(r)), volume_ul=10_000, concentration_ug_ml=600
                    ),
                    residual_recorded(r),
                )
            ),
        },
    ),
    "DRUG-002": Row(
        "limit",
        _PROGRAM,
        CATEGORIES,
        THERAPY,
        breaks={
            # the first prescription, for 1000 µg/mL, on a pump filled with 500 (for the tip, FLOW-001: the
            # path's drug is half as strong as the prescription's)
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription(rate=400, concentration_ug_ml=1_000)), empty_pump(r)),
                also=ids("FLOW-001"),
            ),
            CommitPrescription: Breaks(
                lambda r: committing(
                    programmed(record=r), prescription(rate=400, concentration_ug_ml=1_000), "FLOW-001"
                )
            ),
            # a 1000 µg/mL prescription in force on 500 µg/mL (without the rules)
            SetRate: Breaks(
                lambda r: Case(
                    SetRate(rate_ul_day=410, ack=ack("FLOW-001")),
                    replace(
                        programmed(record=r), prescription=prescription(rate=400, concentration_ug_ml=1_000)
                    ),
                )
            ),
        },
    ),
    "REFILL-001": Row(
        "limit",
        (RefillStageDrug, RefillConfirm),
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary("capacity-ul", overfill, 20_000, 20_001),
            # 400 µL less withdrawn than expected (within REFILL-003's threshold) may still be in
            Boundary("capacity-less-withdrawn-ul", lambda r, v: overfill(r, v, 400), 19_600, 19_601),
        ),
        breaks={
            RefillStageDrug: Breaks(lambda r: overfill(r, 20_001)),
            RefillConfirm: Breaks(lambda r: refilling(programmed(record=r), 20_001, 500)),
        },
    ),
    "REFILL-002": Row(
        "limit",
        (RefillStageDrug, RefillConfirm),
        CATEGORIES,
        THERAPY,
        breaks={
            RefillStageDrug: Breaks(
                lambda r: Case(
                    RefillStageDrug(refill_id=1, volume_ul=10_000, concentration_ug_ml=500),
                    apply(programmed(record=r), RefillBegin()),
                )
            ),
            RefillConfirm: Breaks(
                lambda r: Case(
                    confirm(refill_staged(programmed(record=r), volume=18_000), volume=20_000),
                    refill_staged(programmed(record=r), volume=18_000),
                )
            ),
        },
    ),
    "REFILL-003": Row(
        "acknowledge",
        (RefillConfirm,),
        CATEGORIES,
        THERAPY,
        params=("discrepancy_pct", "discrepancy_floor_ul"),
        boundaries=(
            # 10 mL expected: 20 % is 2 mL, over the 0.5 mL floor
            Boundary(
                "less-20-pct-ul",
                lambda r, v: residual_off(r, 10_000, v),
                2_000,
                2_001,
                tighten=tighten_to("REFILL-003.discrepancy_pct", 10, 1_000, 1_001),
            ),
            Boundary("more-20-pct-ul", lambda r, v: residual_off(r, 10_000, v, above=True), 2_000, 2_001),
            # 2 mL expected: 20 % is 400 µL, under the floor
            Boundary(
                "floor-ul",
                lambda r, v: residual_off(r, 2_000, v),
                500,
                501,
                tighten=tighten_to("REFILL-003.discrepancy_floor_ul", 300, 400, 401),
            ),
        ),
        breaks={RefillConfirm: Breaks(lambda r: residual_off(r, 10_000, 3_000))},
    ),
    "REFILL-004": Row(
        "acknowledge",
        (RefillConfirm,),
        CATEGORIES,
        THERAPY,
        boundaries=(
            # 200 µL/day for the drug's 77 days: 15.4 mL
            Boundary(
                "stability-77-days-ul",
                lambda r, v: refilling(programmed(prescription(rate=200), record=r), v, 500),
                15_400,
                15_401,
            ),
        ),
        breaks={
            RefillConfirm: Breaks(
                lambda r: refilling(programmed(prescription(rate=200), record=r), 20_000, 500)
            )
        },
    ),
    "RES-003": Row(
        "acknowledge",
        STARTS_DELIVERY,
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "stability-s",
                lambda r, v: Case(SetRate(rate_ul_day=810), programmed(record=r, filled_at=T0 - v)),
                77 * DAY - 1,
                77 * DAY,
            ),
        ),
        breaks={
            StagePrescription: Breaks(lambda r: Case(stage(prescription(rate=810)), expired(r))),
            CommitPrescription: Breaks(lambda r: committing(expired(r), prescription(rate=810))),
            SetRate: Breaks(lambda r: Case(SetRate(rate_ul_day=810), expired(r))),
            BolusStart: Breaks(lambda r: Case(bolus(20), expired(r))),
            Resume: Breaks(lambda r: Case(Resume(), suspended(expired(r)))),
            # (fixed: a timed suspension resumes by itself, so it is checked like a Resume)
            Suspend: Breaks(lambda r: Case(SUSPEND, suspended(expired(r)))),
        },
        unbreakable={RefillConfirm: "a refill replaces the drug: its stability starts again"},
    ),
    "RES-001": Row(
        "limit",
        (SetThresholds,),
        CATEGORIES,
        PHASES,
        params=("min_low_reservoir_ul", "min_low_reservoir_days"),
        boundaries=(
            Boundary(
                "min-volume-ul",
                lambda r, v: Case(thresholds(low_reservoir_ul=v), empty_pump(r)),
                2_000,
                1_999,
                tighten=tighten_to("RES-001.min_low_reservoir_ul", 3_000, 3_000, 2_999),
            ),
            Boundary(
                "min-days",
                lambda r, v: Case(thresholds(low_reservoir_days=v), empty_pump(r)),
                7,
                6,
                tighten=tighten_to("RES-001.min_low_reservoir_days", 10, 10, 9),
            ),
        ),
        breaks={SetThresholds: Breaks(lambda r: Case(thresholds(low_reservoir_ul=1_000), empty_pump(r)))},
    ),
    "RES-002": Row(
        "limit",
        (BolusStart, Resume, SetRate, CommitPrescription),
        CATEGORIES,
        THERAPY,
        boundaries=(
            Boundary(
                "bolus-at-most-what-is-left-ul",
                lambda r, v: Case(bolus(v), programmed(record=r, reservoir_scaled=50 * SCALE)),
                50,
                51,
            ),
        ),
        breaks={
            BolusStart: Breaks(lambda r: Case(bolus(51), programmed(record=r, reservoir_scaled=50 * SCALE))),
            Resume: Breaks(lambda r: Case(Resume(), suspended(programmed(record=r, reservoir_scaled=0)))),
            SetRate: Breaks(
                lambda r: Case(SetRate(rate_ul_day=810), programmed(record=r, reservoir_scaled=0))
            ),
            CommitPrescription: Breaks(
                lambda r: committing(programmed(record=r, reservoir_scaled=0), prescription(rate=810))
            ),
        },
    ),
    "BRIDGE-001": Row(
        "limit",
        (BolusStart,),
        CATEGORIES,
        THERAPY,
        params=("window_s",),
        boundaries=(
            Boundary(
                "window-s",
                bridge_window,
                DAY,
                DAY + 1,
                tighten=tighten_to("BRIDGE-001.window_s", HOUR, HOUR, HOUR + 1),
            ),
            Boundary("path-volume-ul", lambda r, v: bridge_window(r, HOUR, v), 250, 251),
        ),
        breaks={
            # no concentration change: 50 µL at the basal rate (800 µL/day)
            BolusStart: Breaks(lambda r: Case(bolus(50, 5_400, BolusKind.BRIDGE), programmed(record=r)))
        },
    ),
    "PRIME-001": Row(
        "limit",
        (BolusStart,),
        CATEGORIES,
        (Phase.IMPLANTED, Phase.THERAPY),
        boundaries=(
            Boundary(
                "saline-after-implant-ul",
                lambda r, v: Case(bolus(v, HOUR, BolusKind.PRIMING), implanted_with_catheter(r)),
                250,
                251,
                phases=(Phase.IMPLANTED,),
            ),
            Boundary(
                "saline-after-revision-ul",
                lambda r, v: Case(bolus(v, HOUR, BolusKind.PRIMING), revised(r)),
                120,
                121,
                phases=THERAPY,
            ),
        ),
        breaks={
            BolusStart: Breaks(
                lambda r: Case(bolus(120, HOUR, BolusKind.PRIMING), programmed(record=r)), phases=THERAPY
            )
        },
    ),
    "ALARM-001": Row(
        "limit",
        (SetThresholds, AlarmSilence),
        CATEGORIES,
        PHASES,
        params=("max_reannunciate_s",),
        boundaries=(
            Boundary(
                "period-s",
                lambda r, v: Case(thresholds(reannunciate_s=v), empty_pump(r)),
                3_600,
                3_601,
                tighten=tighten_to("ALARM-001.max_reannunciate_s", 1_800, 1_800, 1_801),
            ),
            # the pump's period (600 s) ...
            Boundary(
                "silence-s",
                lambda r, v: Case(AlarmSilence(alarm_id=5, duration_s=v), critical_alarm(empty_pump(r))),
                600,
                601,
                tighten=tighten_to(
                    "ALARM-001.max_reannunciate_s", 300, 300, 301
                ),  # ... or the policy's, if shorter
            ),
        ),
        breaks={
            SetThresholds: Breaks(lambda r: Case(thresholds(reannunciate_s=3_601), empty_pump(r))),
            AlarmSilence: Breaks(
                lambda r: Case(AlarmSilence(alarm_id=5, duration_s=601), critical_alarm(empty_pump(r)))
            ),
        },
    ),
    "STOP-001": Row(
        "acknowledge",
        (SessionEnd,),
        CATEGORIES,
        PHASES,
        breaks={SessionEnd: Breaks(lambda r: Case(SessionEnd(), empty_pump(r)))},
    ),
    "STOP-002": Row(
        "acknowledge",
        (Suspend,),
        CATEGORIES,
        THERAPY,
        breaks={Suspend: Breaks(lambda r: Case(Suspend(duration_s=600), programmed(record=r)))},
    ),
    "FLOW-001": Row(
        "acknowledge",
        (*STARTS_DELIVERY, SessionEnd),
        CATEGORIES,
        THERAPY,
        params=("min_pct", "max_gap_s"),
        boundaries=(
            Boundary(
                "saline-gap-s",
                tip_gap,
                HOUR,
                HOUR + 1,
                tighten=tighten_to("FLOW-001.max_gap_s", 1_800, 1_800, 1_801),
            ),
            # 2000 µg/mL programmed, the path's 250 µL weaker: 75 % of it is 1500 µg/mL
            Boundary(
                "weaker-path-ug-ml",
                weak_tip,
                1_500,
                1_499,
                tighten=tighten_to("FLOW-001.min_pct", 80, 1_600, 1_599),
            ),
        ),
        breaks={
            StagePrescription: Breaks(lambda r: Case(stage(prescription(rate=810)), saline_ahead(r))),
            CommitPrescription: Breaks(lambda r: committing(saline_ahead(r), prescription(rate=810))),
            SetRate: Breaks(lambda r: Case(SetRate(rate_ul_day=810), saline_ahead(r))),
            # 500 -> 2000 µg/mL without a bridge: a quarter of the dose until the path clears
            RefillConfirm: Breaks(lambda r: refilling(programmed(record=r), 5_000, 2_000)),
            BolusStart: Breaks(lambda r: Case(bolus(1), saline_ahead(r))),
            Resume: Breaks(lambda r: Case(Resume(), suspended(saline_ahead(r)))),
            # (fixed: a timed suspension resumes by itself, so it is checked like a Resume)
            Suspend: Breaks(lambda r: Case(SUSPEND, suspended(saline_ahead(r)))),
            SessionEnd: Breaks(lambda r: Case(SessionEnd(), saline_ahead(r))),
        },
    ),
    "BATT-001": Row(
        "limit",
        (*_PROGRAM, BolusStart, Resume),
        CATEGORIES,
        THERAPY,
        breaks={
            StagePrescription: Breaks(lambda r: Case(stage(prescription(rate=810)), eos(r))),
            CommitPrescription: Breaks(lambda r: committing(eos(r), prescription(rate=810))),
            SetRate: Breaks(lambda r: Case(SetRate(rate_ul_day=810), eos(r))),
            BolusStart: Breaks(lambda r: Case(bolus(20), eos(r))),
            Resume: Breaks(lambda r: Case(Resume(), end_of_service(suspended(programmed(record=r))))),
        },
    ),
    "BATT-002": Row(
        "limit",
        (SetThresholds,),
        CATEGORIES,
        PHASES,
        params=("min_eri_lead_days",),
        boundaries=(
            Boundary(
                "eri-lead-days",
                lambda r, v: Case(thresholds(eri_lead_days=v), empty_pump(r)),
                90,
                89,
                tighten=tighten_to("BATT-002.min_eri_lead_days", 120, 120, 119),
            ),
        ),
        breaks={SetThresholds: Breaks(lambda r: Case(thresholds(eri_lead_days=30), empty_pump(r)))},
    ),
    "PHASE-001": Row(
        "limit",
        (*_PROGRAM, BolusStart, SetPatientRecord, RecordScreeningResponse),
        CATEGORIES,
        PHASES,
        breaks={
            # screened (an effective 300 µg on record), not yet in therapy
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription()), empty_pump(screening_record(r, 2 * HOUR))),
                phases=(Phase.SCREENING, Phase.IMPLANTED),
            ),
            CommitPrescription: Breaks(
                lambda r: committing(empty_pump(screening_record(r, 2 * HOUR)), prescription()),
                phases=(Phase.SCREENING, Phase.IMPLANTED),
            ),
            # a prescription in force before therapy (without the rules)
            SetRate: Breaks(
                lambda r: Case(SetRate(rate_ul_day=810), programmed(record=r)),
                phases=(Phase.SCREENING, Phase.IMPLANTED),
            ),
            BolusStart: Breaks(
                lambda r: Case(patient_bolus(prescription()), programmed(record=r)),
                phases=(Phase.SCREENING, Phase.IMPLANTED),
            ),
            SetPatientRecord: Breaks(lambda r: Case(other_phase(r), empty_pump(r))),
            RecordScreeningResponse: Breaks(
                lambda r: Case(
                    RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0), empty_pump(r)
                ),
                phases=(Phase.IMPLANTED, Phase.THERAPY),
            ),
        },
    ),
    "SCREEN-001": Row(
        "limit",
        _PROGRAM,
        CATEGORIES,
        THERAPY,
        params=("factor_pct", "long_effect_s"),
        boundaries=(
            # screened with 300 µg whose effect lasted 2 h: twice that a day (at 50 µg/mL, to the ng)
            Boundary(
                "twice-the-screening-dose-ng",
                lambda r, v: Case(
                    stage(prescription_for_daily(v, max_daily_dose_ng=900_000)),
                    empty_pump(r, concentration_ug_ml=50),
                ),
                600_000,
                600_001,
                tighten=(
                    Tightening("SCREEN-001.factor_pct", 150, 450_000, 450_001),
                    # a 2 h effect counts as long: the screening dose itself
                    Tightening("SCREEN-001.long_effect_s", 7_200, 300_000, 300_001),
                ),
            ),
            Boundary(
                "long-effect-s",
                lambda r, v: Case(
                    stage(prescription_for_daily(600_000, max_daily_dose_ng=900_000)),
                    empty_pump(screening_record(r, v), concentration_ug_ml=50),
                ),
                8 * HOUR - 1,
                8 * HOUR,
            ),
            Boundary(
                "the-screening-dose-after-a-long-effect-ng",
                lambda r, v: Case(
                    stage(prescription_for_daily(v, max_daily_dose_ng=900_000)),
                    empty_pump(screening_record(r, 8 * HOUR), concentration_ug_ml=50),
                ),
                300_000,
                300_001,
            ),
        ),
        breaks={
            # no effective screening dose on record
            StagePrescription: Breaks(
                lambda r: Case(stage(prescription()), empty_pump(replace(r, screening_dose_ng=0)))
            ),
            CommitPrescription: Breaks(
                lambda r: committing(empty_pump(replace(r, screening_dose_ng=0)), prescription())
            ),
        },
        unbreakable={SetRate: "SetRate needs a prescription in force: it is never the first"},
    ),
    "MRI-001": Row(
        "limit",
        (MriBegin,),
        CATEGORIES,
        PHASES,
        boundaries=(
            # a valve-gated pump holding 10 mL: REFILL-003's threshold, 20 % (2 mL)
            Boundary(
                "emptied-within-20-pct-ul",
                lambda r, v: Case(MriBegin(emptied_ul=v, ack=ack("MRI-002")), valve(r, 10_000)),
                8_000,
                7_999,
                tighten=tighten_to("REFILL-003.discrepancy_pct", 10, 9_000, 8_999),
            ),
            # holding 2 mL: the 0.5 mL floor
            Boundary(
                "emptied-within-the-floor-ul",
                lambda r, v: Case(MriBegin(emptied_ul=v, ack=ack("MRI-002")), valve(r, 2_000)),
                1_500,
                1_499,
                tighten=tighten_to("REFILL-003.discrepancy_floor_ul", 300, 1_600, 1_599),
            ),
        ),
        breaks={
            MriBegin: Breaks(lambda r: Case(MriBegin(emptied_ul=0, ack=ack("MRI-002")), valve(r, 10_000)))
        },
    ),
    "MRI-002": Row(
        "acknowledge",
        (MriBegin,),
        CATEGORIES,
        PHASES,
        breaks={MriBegin: Breaks(lambda r: Case(MriBegin(emptied_ul=0), empty_pump(r)))},
    ),
    "CLOCK-001": Row(
        "limit",
        (SetClock,),
        CATEGORIES,
        PHASES,
        params=("max_step_s",),
        boundaries=(
            Boundary(
                "forward-s",
                lambda r, v: Case(SetClock(device_time=T0 + v), empty_pump(r)),
                300,
                301,
                tighten=tighten_to("CLOCK-001.max_step_s", 60, 60, 61),
            ),
            # an idle pump set up an hour ago, nothing recorded since
            Boundary(
                "back-idle-s",
                lambda r, v: clock_back(r, v, HOUR),
                300,
                301,
                tighten=tighten_to("CLOCK-001.max_step_s", 60, 60, 61),
            ),
            # ... a threshold change recorded 100 s ago
            Boundary("back-past-an-event-idle-s", lambda r, v: clock_back(r, v, HOUR, 100), 100, 101),
            # a running pump: deliveries up to now
            Boundary(
                "back-past-delivery-s",
                lambda r, v: Case(SetClock(device_time=T0 - v), programmed(record=r)),
                0,
                1,
                phases=THERAPY,
            ),
        ),
        breaks={SetClock: Breaks(lambda r: Case(SetClock(device_time=T0 + 301), empty_pump(r)))},
    ),
    # enforced by SafetyPolicy itself, on no command: see test_a_looser_policy_is_refused_by_policy_001
    "POLICY-001": Row("limit", (), (), ()),
}


# --- the runners --------------------------------------------------------------------------------------------


def refusing(v: Verdict) -> set[str]:
    """The rules that refuse: broken limits and the hazards not acknowledged (a staging shows every hazard:
    its commit is what acknowledges them)."""
    hazards = v.hazards if isinstance(v.command, StagePrescription) else v.unacknowledged
    return {x.rule_id for x in (*v.violations, *hazards)}


def verdict_of(case: Case, policy: SafetyPolicy | None = None) -> Verdict:
    return evaluate(case.command, case.state, policy or case.policy)


def refused(case: Case, policy: SafetyPolicy | None = None) -> set[str]:
    return refusing(verdict_of(case, policy))


def can_acknowledge(command: type[Message]) -> bool:
    return any(f.name == "ack" for f in fields(command))  # type: ignore[arg-type]


def _id(*parts: object) -> str:
    return ":".join(str(p).lower() if not isinstance(p, Phase) else p.name.lower() for p in parts)


def _marks(rule_id: str, bug: str | None) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.rule(rule_id)]
    if bug is not None:
        marks.append(pytest.mark.xfail(strict=True, reason=bug))
    return marks


def _covered(
    row: Row, categories: tuple[Category, ...] | None, phases: tuple[Phase, ...] | None
) -> Iterator[tuple[Category, Phase]]:
    for category in categories or row.categories:
        for phase_ in phases or row.phases:
            yield category, phase_


def boundary_cases() -> Iterator[object]:
    for rule_id, row in TABLE.items():
        for b in row.boundaries:
            for category, phase_ in _covered(row, b.categories, b.phases):
                record = record_for(category, phase_)
                yield pytest.param(
                    rule_id,
                    b,
                    record,
                    "accepted",
                    id=_id(rule_id, b.what, category, phase_, "accepted"),
                    marks=_marks(rule_id, None),
                )
                yield pytest.param(
                    rule_id,
                    b,
                    record,
                    "refused",
                    id=_id(rule_id, b.what, category, phase_, "refused"),
                    marks=_marks(rule_id, b.bug),
                )


def tightening_cases() -> Iterator[object]:
    for rule_id, row in TABLE.items():
        for b in row.boundaries:
            for t in b.tighten:
                for category, phase_ in _covered(row, b.categories, b.phases):
                    yield pytest.param(
                        rule_id,
                        b,
                        t,
                        record_for(category, phase_),
                        id=_id(rule_id, b.what, t.param, category, phase_),
                        marks=_marks(rule_id, b.bug),
                    )


def command_cases() -> Iterator[object]:
    for rule_id, row in TABLE.items():
        for command, b in row.breaks.items():
            for category, phase_ in _covered(row, b.categories, b.phases):
                yield pytest.param(
                    rule_id,
                    command,
                    b,
                    record_for(category, phase_),
                    id=_id(rule_id, command.__name__, category, phase_),
                    marks=_marks(rule_id, b.bug),
                )


def level_cases() -> Iterator[object]:
    """Every breaking command and every boundary's refused side, in the first category and phase it covers."""
    for rule_id, row in TABLE.items():
        for command, b in row.breaks.items():
            category, phase_ = next(_covered(row, b.categories, b.phases))
            yield pytest.param(
                rule_id,
                row.level,
                b.build(record_for(category, phase_)),
                b.also,
                id=_id(rule_id, row.level, command.__name__),
                marks=_marks(rule_id, b.bug),
            )
        for e in row.boundaries:
            category, phase_ = next(_covered(row, e.categories, e.phases))
            yield pytest.param(
                rule_id,
                row.level,
                e.build(record_for(category, phase_), e.refused),
                e.also,
                id=_id(rule_id, row.level, e.what),
                marks=_marks(rule_id, e.bug),
            )


@pytest.mark.parametrize(("rule_id", "boundary", "record", "side"), list(boundary_cases()))
def test_each_boundary_from_both_sides(
    rule_id: str, boundary: Boundary, record: PatientRecord, side: str
) -> None:
    if side == "accepted":
        assert refused(boundary.build(record, boundary.accepted)) == set()
    else:
        assert refused(boundary.build(record, boundary.refused)) == {rule_id, *boundary.also}


@pytest.mark.parametrize(("rule_id", "boundary", "tightening", "record"), list(tightening_cases()))
def test_a_tightened_policy_moves_the_boundary(
    rule_id: str, boundary: Boundary, tightening: Tightening, record: PatientRecord
) -> None:
    def under_policy(value: int) -> set[str]:
        case = boundary.build(record, value)
        return refused(case, policy_with(case.policy, tightening.param, tightening.value))

    assert under_policy(boundary.accepted) == {rule_id, *boundary.also}  # the old edge is refused now
    assert under_policy(tightening.accepted) == set()
    assert under_policy(tightening.refused) == {rule_id, *boundary.also}


@pytest.mark.parametrize(("rule_id", "command", "breaks", "record"), list(command_cases()))
def test_each_command_the_rule_checks(
    rule_id: str, command: type[Message], breaks: Breaks, record: PatientRecord
) -> None:
    case = breaks.build(record)
    assert type(case.command) is command
    assert refused(case) == {rule_id, *breaks.also}


@pytest.mark.parametrize(("rule_id", "level", "case", "also"), list(level_cases()))
def test_an_acknowledgement_passes_a_hazard_never_a_limit(
    rule_id: str, level: str, case: Case, also: frozenset[str]
) -> None:
    plain = verdict_of(case)
    violations = {v.rule_id for v in plain.violations}
    hazards = {v.rule_id for v in plain.hazards}
    if level == "limit":
        assert rule_id in violations
        assert rule_id not in hazards
        if can_acknowledge(type(case.command)):
            acked = verdict_of(case._replace(command=acknowledging(case.command, rule_id)))
            assert rule_id in {v.rule_id for v in acked.violations}
            assert rule_id not in {v.rule_id for v in acked.hazards}
            assert not acked.accepted
        return
    assert rule_id in hazards
    assert rule_id not in violations
    if isinstance(case.command, StagePrescription):  # staged with the hazard shown; its commit acknowledges
        assert rule_id in plain.to_acknowledge
        assert plain.accepted is not bool(violations)
        return
    assert rule_id in refusing(plain)
    acked = verdict_of(case._replace(command=acknowledging(case.command, rule_id)))
    assert refusing(acked) == set(also)


# --- POLICY-001 over every parameter of the table -----------------------------------------------------------


def parameter_cases() -> Iterator[object]:
    for rule_id, row in TABLE.items():
        for name in row.params:
            yield pytest.param(f"{rule_id}.{name}", id=f"{rule_id}.{name}", marks=_marks("POLICY-001", None))


@pytest.mark.parametrize("key", list(parameter_cases()))
def test_a_looser_policy_is_refused_by_policy_001(key: str) -> None:
    rule_id, name = key.split(".")
    param = next(p for p in CATALOG[rule_id].params if p.name == name)
    looser = 1 if param.tighten == "lower" else -1
    assert SafetyPolicy(CATALOG, {key: param.default})(rule_id, name) == param.default
    with pytest.raises(PolicyError) as info:
        SafetyPolicy(CATALOG, {key: param.default + looser})
    assert info.value.rule_ids == ("POLICY-001",)
    if param.limit is not None:  # tighter, but past what the pump can enforce
        assert SafetyPolicy(CATALOG, {key: param.limit})(rule_id, name) == param.limit
        with pytest.raises(PolicyError) as info:
            SafetyPolicy(CATALOG, {key: param.limit - looser})
        assert info.value.rule_ids == ("POLICY-001",)


# --- the table against the catalog and the engine -----------------------------------------------------------


def test_the_table_has_a_row_for_every_rule_of_the_catalog() -> None:
    assert sorted(TABLE) == sorted(CATALOG.ids)


def _registered(rule_id: str) -> set[type[Message]]:
    return {command for check in CHECKS if check.rule_id == rule_id for command in check.commands}


@pytest.mark.parametrize("rule_id", [pytest.param(r, marks=_marks(r, None)) for r in CATALOG.ids])
def test_each_row_matches_the_catalog_and_checks(rule_id: str) -> None:
    row, rule_ = TABLE[rule_id], CATALOG[rule_id]
    assert row.level == rule_.level
    assert row.params == tuple(p.name for p in rule_.params)
    # exactly the commands CHECKS runs the rule on, each broken by a case or said to be unbreakable
    assert len(set(row.commands)) == len(row.commands)
    assert set(row.commands) == _registered(rule_id)
    assert set(row.breaks) | set(row.unbreakable) == set(row.commands)
    assert not set(row.breaks) & set(row.unbreakable)
    # each of its own parameters is tightened on one of its boundaries
    own = {t.param for b in row.boundaries for t in b.tighten if t.param.startswith(f"{rule_id}.")}
    assert own == {f"{rule_id}.{name}" for name in row.params}
    # each boundary and tightening is one unit wide; narrowed to what the row covers, and covering it
    covered: set[tuple[Category, Phase]] = set()
    for b in row.boundaries:
        assert abs(b.accepted - b.refused) == 1, b.what
        assert all(abs(t.accepted - t.refused) == 1 for t in b.tighten), b.what
        assert set(b.categories or ()) <= set(row.categories)
        assert set(b.phases or ()) <= set(row.phases)
        covered |= set(_covered(row, b.categories, b.phases))
    for b_ in row.breaks.values():
        assert set(b_.categories or ()) <= set(row.categories)
        assert set(b_.phases or ()) <= set(row.phases)
        covered |= set(_covered(row, b_.categories, b_.phases))
    assert covered == set(_covered(row, None, None))
    assert row.breaks or not row.commands


def test_every_catalog_parameter_is_tightened_somewhere_in_the_table() -> None:
    tightened_ = {t.param for row in TABLE.values() for b in row.boundaries for t in b.tighten}
    assert tightened_ == {f"{r.id}.{p.name}" for r in CATALOG for p in r.params}
    assert all(row.boundaries for row in TABLE.values() if row.params)


@pytest.mark.rule("FLEX-002")
def test_a_periodic_bolus_outside_the_day_is_refused_by_the_codec() -> None:
    # (FLEX-002's "periodic boluses start within the day" is the wire field's range: none past it is staged)
    def periodic(start_s: int) -> StagePrescription:
        bolus_ = PeriodicBolus(start_s=start_s, volume_ul=10, duration_s=600)
        return stage(prescription(rate=790, boluses=(bolus_,)))

    assert refused_by(periodic(DAY - 1), programmed()) == set()
    with pytest.raises(FieldRangeError, match="start_s"):
        refused_by(periodic(DAY), programmed())

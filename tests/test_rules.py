"""Every safety rule, by ID: a command that breaks it is refused with that ID, one inside it is not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from factories import (
    DAY,
    POLICY,
    T0,
    ack,
    commit,
    confirm,
    empty_pump,
    patient,
    prescription,
    programmed,
    refill_staged,
    refused_by,
    rid,
    verdict,
)
from itbproto.core.safety import SafetyPolicy
from itbproto.core.safety.rules.common import mg_day, span
from itbproto.core.therapy import SCALE, Battery, advance, apply
from itbproto.core.therapy.fluid import Path, Segment
from itbproto.core.therapy.state import BolusRecord
from itbproto.core.wire import (
    AlarmCode,
    AlarmRecord,
    AlarmSilence,
    AlarmThresholds,
    BolusKind,
    BolusStart,
    FlexStep,
    Origin,
    PatientGroup,
    PeriodicBolus,
    Phase,
    PrescriptionMode,
    Procedure,
    RecordProcedure,
    RecordScreeningResponse,
    RefillBegin,
    RefillResidual,
    RefillStageDrug,
    Resume,
    ScreeningResponse,
    SessionEnd,
    SetClock,
    SetRate,
    SetThresholds,
    Severity,
    StagePrescription,
    Suspend,
    TherapyMode,
    WithdrawalRisk,
)
from itbproto.errors import PolicyError, SafetyViolation
from itbproto.io.specfiles import load_rules
from itbproto.units import DoseRate

rule = pytest.mark.rule
SCREENING = patient(phase=Phase.SCREENING, screening_dose_ng=0, screening_effect_s=0)


def bolus(volume: int = 100, duration: int = 3600, kind: BolusKind = BolusKind.CLINICIAN) -> BolusStart:
    return BolusStart(kind=kind, volume_ul=volume, duration_s=duration)


def stage(**changes: object) -> StagePrescription:
    return StagePrescription(prescription=prescription(**changes))  # type: ignore[arg-type]


# --- dose ------------------------------------------------------------------------------------------


@rule("DOSE-001")
def test_bolus_that_would_break_the_rolling_24h_dose_is_refused() -> None:
    state = programmed(prescription(rate=900, max_bolus_ng=200_000))  # 450 µg/day, limit 600 µg/day
    assert "DOSE-001" not in refused_by(bolus(volume=300), state)  # 150 µg on top: 600 µg in 24 h
    assert "DOSE-001" in refused_by(bolus(volume=302), state)  # 151 µg: 601 µg in 24 h


@rule("DOSE-001")
def test_rolling_dose_counts_what_was_already_delivered_today() -> None:
    # a 100 µg bolus 12 h ago still counts; a second one would make 400 + 100 + 120 > 600
    state = programmed(prescription(max_bolus_ng=200_000), history_days=2)
    state = apply(state, bolus(volume=200))
    state, _ = advance(state, T0 + 12 * 3600)
    assert "DOSE-001" in refused_by(bolus(volume=240), state)
    state, _ = advance(state, T0 + DAY + 3600)  # the first bolus has left the 24 h window
    assert "DOSE-001" not in refused_by(bolus(volume=240), state)


@rule("DOSE-001")
def test_lowering_the_limit_below_what_was_delivered_is_refused() -> None:
    state = programmed()  # 400 µg/day delivered
    assert "DOSE-001" in refused_by(stage(rate=700, max_daily_dose_ng=380_000), state)
    assert "DOSE-001" not in refused_by(stage(rate=700, max_daily_dose_ng=450_000), state)


@rule("DOSE-001")
def test_timed_suspension_that_would_resume_into_an_overdose_is_refused() -> None:
    # found by the stateful property test: a lower limit committed while suspended indefinitely is
    # fine, but a timed suspension resumes delivery by itself, so it is checked like a Resume
    state = programmed(prescription(rate=2000, max_daily_dose_ng=1_000_000), history_days=0)
    state, _ = advance(state, T0 + 7200)  # 83.3 µg in two hours
    state = apply(state, Suspend(duration_s=0, ack=ack("STOP-002")))
    low = stage(rate=200, max_daily_dose_ng=100_000)  # 100 µg/day from now on
    assert verdict(low, state).accepted
    state = apply(apply(state, low), commit(apply(state, low)))
    assert "DOSE-001" in refused_by(Suspend(duration_s=600), state)  # 83 + 91 µg in one window
    assert "DOSE-001" in refused_by(Resume(), state)
    assert "DOSE-001" not in refused_by(Suspend(duration_s=DAY), state)  # resumes after the burst left


@rule("DOSE-002")
def test_programmed_daily_dose_above_its_own_limit_is_refused() -> None:
    state = programmed()
    flex = prescription(
        mode=PrescriptionMode.FLEX,
        steps=(FlexStep(start_s=0, rate_ul_day=800), FlexStep(start_s=12 * 3600, rate_ul_day=880)),
        boluses=(PeriodicBolus(start_s=8 * 3600, volume_ul=100, duration_s=3600),),
    )  # 200 + 220 + 50 = 470 µg/day
    assert "DOSE-002" in refused_by(
        StagePrescription(prescription=replace(flex, max_daily_dose_ng=469_999)), state
    )
    assert "DOSE-002" not in refused_by(
        StagePrescription(prescription=replace(flex, max_daily_dose_ng=470_000)), state
    )


@rule("DOSE-003")
def test_daily_limit_above_the_group_ceiling_is_refused() -> None:
    state = programmed()
    assert "DOSE-003" in refused_by(stage(max_daily_dose_ng=2_000_001), state)
    assert "DOSE-003" not in refused_by(stage(max_daily_dose_ng=2_000_000), state)
    child = programmed(record=patient(group=PatientGroup.CHILD))
    assert "DOSE-003" in refused_by(stage(max_daily_dose_ng=1_000_001), child)


@rule("DOSE-003")
@rule("POLICY-001")
def test_policy_can_lower_the_ceiling_but_not_raise_it() -> None:
    strict = SafetyPolicy(load_rules(), {"DOSE-003.adult_ceiling_ng_day": 800_000})
    assert "DOSE-003" in refused_by(stage(max_daily_dose_ng=900_000), programmed(), strict)
    with pytest.raises(PolicyError) as info:
        SafetyPolicy(load_rules(), {"DOSE-003.adult_ceiling_ng_day": 3_000_000})
    assert info.value.rule_ids == ("POLICY-001",)


@rule("POLICY-001")
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TITR-001.spinal_pct", 31),
        ("TITR-002.interval_s", 3600),
        ("RES-001.min_low_reservoir_days", 1),
        ("NOPE-001.x", 1),
        ("BOL-001.absolute_max_bolus_ng", "100"),
    ],
)
def test_looser_or_unknown_parameters_are_refused(key: str, value: int) -> None:
    with pytest.raises(PolicyError):
        SafetyPolicy(load_rules(), {key: value})


@rule("POLICY-001")
def test_every_parameter_can_be_set_to_its_default() -> None:
    catalog = load_rules()
    defaults = {f"{r.id}.{p.name}": p.default for r in catalog for p in r.params}
    assert SafetyPolicy(catalog, defaults).values == POLICY.values


# --- boluses ---------------------------------------------------------------------------------------


@rule("BOL-001")
def test_bolus_above_the_prescription_maximum_is_refused() -> None:
    state = programmed()  # max bolus 50 µg at 500 µg/mL = 100 µL
    assert "BOL-001" not in refused_by(bolus(volume=100), state)
    assert "BOL-001" in refused_by(bolus(volume=101), state)


@rule("BOL-001")
def test_periodic_bolus_above_the_maximum_is_refused() -> None:
    big = PeriodicBolus(start_s=3600, volume_ul=101, duration_s=3600)
    assert "BOL-001" in refused_by(stage(boluses=(big,)), programmed())


@rule("BOL-001")
def test_absolute_bolus_maximum_applies_without_prescription() -> None:
    strict = SafetyPolicy(load_rules(), {"BOL-001.absolute_max_bolus_ng": 40_000})
    assert "BOL-001" in refused_by(bolus(volume=100), empty_pump(), strict)


@rule("BOL-002")
def test_screening_doses_follow_the_label() -> None:
    pump = empty_pump(SCREENING, concentration_ug_ml=50)
    assert "BOL-002" in refused_by(bolus(volume=1500), pump)  # 75 µg first: skips 50 µg
    assert "BOL-002" in refused_by(bolus(volume=1200), pump)  # 60 µg is not a screening dose
    assert "BOL-002" in refused_by(bolus(volume=500), pump)  # 25 µg: for children only
    assert not refused_by(bolus(volume=1000), pump)  # 50 µg over 1 h
    after = apply(pump, bolus(volume=1000))
    after, _ = advance(after, T0 + DAY)
    assert "BOL-002" in refused_by(bolus(volume=1500), after)  # its response is not recorded yet
    after = apply(after, RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0))
    assert "BOL-002" in refused_by(bolus(volume=2000), after)  # 100 µg skips 75 µg
    assert "BOL-002" not in refused_by(bolus(volume=1500), after)  # 75 µg the next day
    early = apply(
        apply(pump, bolus(volume=1000)), RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0)
    )
    early, _ = advance(early, T0 + DAY - 1)
    assert "BOL-002" in refused_by(bolus(volume=1500), early)  # a second short of 24 h


@rule("BOL-002")
def test_screening_ends_with_a_response_or_after_the_highest_dose() -> None:
    pump = empty_pump(SCREENING, concentration_ug_ml=50)
    worked = apply(
        apply(pump, bolus(volume=1000)),
        RecordScreeningResponse(response=ScreeningResponse.EFFECTIVE, effect_s=3600),
    )
    worked, _ = advance(worked, T0 + DAY)
    assert "BOL-002" in refused_by(bolus(volume=1500), worked)  # screening is over
    assert worked.record.screening_dose_ng == 50_000
    state = pump
    for day, volume in enumerate((1000, 1500, 2000)):
        state, _ = advance(state, T0 + day * DAY)
        state = apply(state, bolus(volume=volume))
        state = apply(state, RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0))
    state, _ = advance(state, T0 + 3 * DAY)
    assert "BOL-002" in refused_by(bolus(volume=2000), state)  # not a candidate


@rule("BOL-002")
def test_a_child_may_start_screening_at_25_ug() -> None:
    child = empty_pump(patient(group=PatientGroup.CHILD, phase=Phase.SCREENING), concentration_ug_ml=50)
    assert "BOL-002" not in refused_by(bolus(volume=500), child)
    assert "BOL-002" not in refused_by(bolus(volume=1000), child)


@rule("BOL-003")
def test_bolus_faster_than_the_profile_allows_is_refused() -> None:
    state = programmed()
    assert "BOL-003" in refused_by(bolus(volume=100, duration=60), state)  # 144 mL/day
    assert "BOL-003" not in refused_by(bolus(volume=100, duration=360), state)  # 24 mL/day


@rule("BOL-004")
def test_second_bolus_while_one_runs_is_refused() -> None:
    state = apply(programmed(), bolus(volume=50))
    assert "BOL-004" in refused_by(bolus(volume=20), state)
    state, _ = advance(state, T0 + 3600)
    assert "BOL-004" not in refused_by(bolus(volume=20), state)


@rule("PBOL-001")
def test_patient_bolus_lockout() -> None:
    patient = bolus(volume=10, duration=600, kind=BolusKind.PATIENT)
    state = apply(programmed(), patient)
    state, _ = advance(state, T0 + 4 * 3600 - 1)
    assert "PBOL-001" in refused_by(patient, state)
    state, _ = advance(state, T0 + 4 * 3600)
    assert "PBOL-001" not in refused_by(patient, state)


@rule("PBOL-002")
def test_patient_boluses_per_day() -> None:
    patient = bolus(volume=10, duration=600, kind=BolusKind.PATIENT)
    state = programmed()
    for hour in (0, 5, 10):
        state, _ = advance(state, T0 + hour * 3600)
        assert verdict(patient, state).accepted
        state = apply(state, patient)
    state, _ = advance(state, T0 + 15 * 3600)
    assert "PBOL-002" in refused_by(patient, state)
    state, _ = advance(state, T0 + DAY + 1)
    assert "PBOL-002" not in refused_by(patient, state)


@rule("PBOL-003")
def test_patient_bolus_must_be_the_prescribed_one() -> None:
    state = programmed()
    assert "PBOL-003" in refused_by(bolus(volume=20, duration=600, kind=BolusKind.PATIENT), state)
    assert "PBOL-003" in refused_by(bolus(volume=10, duration=300, kind=BolusKind.PATIENT), state)
    disabled = programmed(prescription(patient=replace(prescription().patient, max_per_day=0)))
    assert "PBOL-003" in refused_by(bolus(volume=10, duration=600, kind=BolusKind.PATIENT), disabled)
    assert "PBOL-003" in refused_by(bolus(volume=10, duration=600, kind=BolusKind.PATIENT), empty_pump())


@rule("BRIDGE-001")
def test_bridge_bolus_only_after_a_concentration_change() -> None:
    bridge = bolus(volume=50, duration=3 * 3600, kind=BolusKind.BRIDGE)
    state = programmed()
    assert "BRIDGE-001" in refused_by(bridge, state)
    changed = replace(state, concentration_changed_at=T0 - 3600)
    assert "BRIDGE-001" not in refused_by(bridge, changed)
    assert "BRIDGE-001" in refused_by(bolus(volume=251, duration=36_000, kind=BolusKind.BRIDGE), changed)
    assert "BRIDGE-001" in refused_by(bridge, replace(changed, bridge_given=True))
    assert "BRIDGE-001" in refused_by(bridge, replace(state, concentration_changed_at=T0 - DAY - 1))
    # 50 µL of 500 µg/mL is 25 µg: at 400 µg/day that takes 5400 s, no less
    assert "BRIDGE-001" not in refused_by(bolus(volume=50, duration=5400, kind=BolusKind.BRIDGE), changed)
    assert "BRIDGE-001" in refused_by(bolus(volume=50, duration=5399, kind=BolusKind.BRIDGE), changed)


@rule("PRIME-001")
def test_priming_bolus_only_after_catheter_work() -> None:
    prime = bolus(volume=120, duration=600, kind=BolusKind.PRIMING)
    state = programmed(prescription(max_bolus_ng=200_000))
    assert "PRIME-001" in refused_by(prime, state)
    state = apply(state, RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=120))
    assert verdict(prime, state).accepted  # the new catheter's 120 µL of saline
    assert "PRIME-001" in refused_by(bolus(volume=121, duration=600, kind=BolusKind.PRIMING), state)
    state = apply(state, prime)
    state, _ = advance(state, T0 + 2 * 3600)
    assert "PRIME-001" in refused_by(prime, state)  # primed: a second priming bolus would push out drug


# --- titration -------------------------------------------------------------------------------------


@rule("TITR-001")
@pytest.mark.parametrize(
    ("origin", "group", "allowed_rate"),
    [
        (Origin.SPINAL, PatientGroup.ADULT, 1040),  # +30 %
        (Origin.CEREBRAL, PatientGroup.ADULT, 920),  # +15 %
        (Origin.SPINAL, PatientGroup.CHILD, 920),  # +15 %
    ],
)
def test_titration_step_limit(origin: Origin, group: PatientGroup, allowed_rate: int) -> None:
    state = programmed(prescription(max_daily_dose_ng=900_000), record=patient(origin=origin, group=group))
    assert "TITR-001" not in refused_by(SetRate(rate_ul_day=allowed_rate), state)
    assert "TITR-001" in refused_by(SetRate(rate_ul_day=allowed_rate + 1), state)


@rule("TITR-001")
def test_titration_reference_is_the_lowest_dose_of_the_last_day() -> None:
    state = programmed(prescription(max_daily_dose_ng=900_000))  # 800 µL/day
    state = apply(state, SetRate(rate_ul_day=700))  # lowered now: the reference becomes 700
    state, _ = advance(state, T0 + 3600)
    assert "TITR-001" in refused_by(SetRate(rate_ul_day=1000), state)  # +43 % over 700
    assert "TITR-001" not in refused_by(SetRate(rate_ul_day=910), state)


@rule("TITR-002")
def test_one_increase_per_day() -> None:
    state = programmed(prescription(max_daily_dose_ng=900_000))
    state = apply(state, SetRate(rate_ul_day=850))
    state, _ = advance(state, T0 + 12 * 3600)
    assert "TITR-002" in refused_by(SetRate(rate_ul_day=900), state)
    assert "TITR-002" not in refused_by(SetRate(rate_ul_day=820), state)  # a decrease is fine
    state, _ = advance(state, T0 + DAY)
    assert "TITR-002" not in refused_by(SetRate(rate_ul_day=900), state)


# --- prescription shape ----------------------------------------------------------------------------


@rule("RATE-001")
def test_rate_outside_the_profile_range_is_refused() -> None:
    state = programmed()
    assert "RATE-001" in refused_by(SetRate(rate_ul_day=47), state)
    assert "RATE-001" not in refused_by(SetRate(rate_ul_day=48), state)
    big = stage(rate=24_001, max_daily_dose_ng=2_000_000)
    assert "RATE-001" in refused_by(big, state)


@rule("RATE-002")
def test_rate_off_the_resolution_is_refused() -> None:
    profile = replace(programmed().profile, rate_step_ul_day=5)
    state = programmed(profile=profile)
    assert "RATE-002" in refused_by(SetRate(rate_ul_day=802), state)
    assert "RATE-002" not in refused_by(SetRate(rate_ul_day=805), state)


@rule("FLEX-001")
def test_step_counts() -> None:
    state = programmed()
    two = (FlexStep(start_s=0, rate_ul_day=800), FlexStep(start_s=3600, rate_ul_day=800))
    assert "FLEX-001" in refused_by(stage(steps=two), state)  # continuous with two steps
    assert "FLEX-001" in refused_by(stage(mode=PrescriptionMode.FLEX), state)  # flex with one
    assert "FLEX-001" not in refused_by(stage(mode=PrescriptionMode.FLEX, steps=two), state)
    small = replace(state.profile, max_flex_steps=2)
    three = (*two, FlexStep(start_s=7200, rate_ul_day=800))
    assert "FLEX-001" in refused_by(
        stage(mode=PrescriptionMode.FLEX, steps=three), replace(state, profile=small)
    )


@rule("FLEX-002")
def test_steps_cover_the_day() -> None:
    state = programmed()
    late = (FlexStep(start_s=60, rate_ul_day=800), FlexStep(start_s=3600, rate_ul_day=800))
    unordered = (FlexStep(start_s=0, rate_ul_day=800), FlexStep(start_s=0, rate_ul_day=800))
    for steps in (late, unordered):
        assert "FLEX-002" in refused_by(stage(mode=PrescriptionMode.FLEX, steps=steps), state)


# --- drug and refill -------------------------------------------------------------------------------


@rule("DRUG-001")
def test_concentrations_come_from_the_drug_table() -> None:
    state = programmed()
    assert "DRUG-001" in refused_by(stage(concentration_ug_ml=600), state)
    state = apply(state, RefillBegin())
    state = apply(state, RefillResidual(refill_id=rid(state), measured_ul=19_000))
    assert "DRUG-001" in refused_by(
        RefillStageDrug(refill_id=rid(state), volume_ul=20_000, concentration_ug_ml=750), state
    )
    assert "DRUG-001" not in refused_by(
        RefillStageDrug(refill_id=rid(state), volume_ul=20_000, concentration_ug_ml=1000), state
    )


@rule("DRUG-002")
def test_prescription_must_match_the_reservoir() -> None:
    state = programmed()
    assert "DRUG-002" in refused_by(stage(concentration_ug_ml=1000, rate=400), state)


@rule("DRUG-002")
def test_refill_with_a_new_concentration_rescales_the_rates() -> None:
    state = refill_staged(programmed(), conc=2000, volume=10_000)  # 50 days at 0.2 mL/day
    # no bridge: a quarter of the dose at the tip for a while
    assert refused_by(confirm(state, 10_000, 2000), state) == {"FLOW-001"}
    bridged = replace(confirm(state, 10_000, 2000), bridge=True)
    assert verdict(bridged, state).accepted
    after = apply(state, bridged)
    assert after.prescription is not None
    assert after.prescription.concentration_ug_ml == 2000
    assert after.prescription.steps[0].rate_ul_day == 200  # 400 µg/day at 2 mg/mL
    assert after.concentration_changed_at == T0
    # a rescaled rate below the profile's minimum is refused, not silently raised
    low = refill_staged(programmed(prescription(rate=100)), conc=2000)  # 50 µg/day -> 25 µL/day
    assert "RATE-001" in refused_by(confirm(low, conc=2000), low)


@rule("REFILL-001")
def test_no_overfill() -> None:
    state = apply(programmed(), RefillBegin())
    state = apply(state, RefillResidual(refill_id=rid(state), measured_ul=19_900))
    assert "REFILL-001" in refused_by(
        RefillStageDrug(refill_id=rid(state), volume_ul=20_001, concentration_ug_ml=500), state
    )
    assert "REFILL-001" not in refused_by(
        RefillStageDrug(refill_id=rid(state), volume_ul=20_000, concentration_ug_ml=500), state
    )


@rule("REFILL-002")
def test_refill_needs_both_steps_and_matching_confirmation() -> None:
    state = programmed()
    assert "REFILL-002" in refused_by(confirm(state), state)  # no refill begun
    begun = apply(state, RefillBegin())
    assert "REFILL-002" in refused_by(confirm(begun), begun)  # residual not recorded
    assert "REFILL-002" in refused_by(
        RefillStageDrug(refill_id=rid(begun), volume_ul=1, concentration_ug_ml=500), begun
    )
    measured = apply(begun, RefillResidual(refill_id=rid(begun), measured_ul=19_900))
    assert "REFILL-002" in refused_by(confirm(measured), measured)  # nothing staged
    staged = apply(measured, RefillStageDrug(refill_id=rid(begun), volume_ul=18_000, concentration_ug_ml=500))
    assert "REFILL-002" in refused_by(confirm(staged, volume=20_000), staged)  # differs from staged
    assert verdict(confirm(staged, volume=18_000), staged).accepted


@rule("REFILL-003")
def test_residual_discrepancy_needs_acknowledgement() -> None:
    state = programmed()  # about 19.2 mL expected after two days
    off = refill_staged(state, measured=10_000, volume=11_000)
    assert "REFILL-003" in refused_by(confirm(off, volume=11_000), off)
    assert verdict(confirm(off, volume=11_000, acknowledged=True), off).accepted
    close = refill_staged(state, measured=19_000)  # within 20 % and... above the 0.5 mL floor
    assert "REFILL-003" not in refused_by(confirm(close), close)
    strict = SafetyPolicy(load_rules(), {"REFILL-003.discrepancy_pct": 1})
    assert "REFILL-003" in refused_by(confirm(close), close, strict)


# --- reservoir, battery, alarms, clock, session ----------------------------------------------------


@rule("RES-001")
def test_low_reservoir_alarm_lead_time() -> None:
    state = programmed()
    good = AlarmThresholds(low_reservoir_ul=2_000, low_reservoir_days=7, eri_lead_days=90, reannunciate_s=600)
    assert verdict(SetThresholds(thresholds=good), state).accepted
    for bad in (replace(good, low_reservoir_ul=1_999), replace(good, low_reservoir_days=6)):
        assert refused_by(SetThresholds(thresholds=bad), state) == {"RES-001"}


@rule("RES-002")
def test_no_delivery_from_an_empty_reservoir() -> None:
    state = programmed()
    low = replace(state, reservoir_scaled=50 * SCALE)
    assert "RES-002" in refused_by(bolus(volume=51), low)
    assert "RES-002" not in refused_by(bolus(volume=50), low)
    empty = replace(state, reservoir_scaled=0, mode=TherapyMode.SUSPENDED)
    assert "RES-002" in refused_by(Resume(), empty)
    assert "RES-002" in refused_by(SetRate(rate_ul_day=700), empty)


@rule("RES-002")
def test_delivery_stops_exactly_when_the_reservoir_empties() -> None:
    state = replace(programmed(), reservoir_scaled=10 * SCALE + 5)
    state, flows = advance(state, T0 + 2 * DAY)
    assert state.reservoir_scaled == 0
    assert sum(f.volume_scaled for f in flows) == 10 * SCALE + 5


@rule("BATT-001")
def test_end_of_service_refuses_delivery() -> None:
    state = replace(programmed(), battery=Battery.EOS)
    for command in (bolus(volume=10), Resume(), SetRate(rate_ul_day=700), stage()):
        assert "BATT-001" in refused_by(command, state)
    state, flows = advance(state, T0 + 3600)
    assert flows == ()


@rule("BATT-002")
def test_eri_lead_time() -> None:
    base = AlarmThresholds(low_reservoir_ul=2_000, low_reservoir_days=7, eri_lead_days=89, reannunciate_s=600)
    assert refused_by(SetThresholds(thresholds=base), programmed()) == {"BATT-002"}


@rule("ALARM-001")
def test_critical_alarm_silence_is_bounded() -> None:
    alarm = AlarmRecord(
        alarm_id=5,
        code=AlarmCode.MOTOR_STALL,
        severity=Severity.CRITICAL,
        raised_at=T0,
        silenced_until=0,
        acknowledged=False,
    )
    state = programmed(alarms=(alarm,))
    assert "ALARM-001" in refused_by(AlarmSilence(alarm_id=5, duration_s=601), state)
    assert verdict(AlarmSilence(alarm_id=5, duration_s=600), state).accepted
    minor = replace(alarm, severity=Severity.NON_CRITICAL)
    assert verdict(AlarmSilence(alarm_id=5, duration_s=86_400), programmed(alarms=(minor,))).accepted
    slow = AlarmThresholds(
        low_reservoir_ul=2_000, low_reservoir_days=7, eri_lead_days=90, reannunciate_s=3_601
    )
    assert refused_by(SetThresholds(thresholds=slow), state) == {"ALARM-001"}


@rule("STOP-001")
def test_session_cannot_end_with_the_pump_stopped_unacknowledged() -> None:
    running = programmed()
    assert verdict(SessionEnd(), running).accepted
    suspended = apply(running, Suspend(duration_s=0))
    assert refused_by(SessionEnd(), suspended) == {"STOP-001"}
    assert verdict(SessionEnd(ack=ack("STOP-001")), suspended).accepted
    assert refused_by(SessionEnd(), empty_pump()) == {"STOP-001"}


@rule("CLOCK-001")
def test_clock_steps_are_small_and_never_rewrite_history() -> None:
    state = programmed()
    assert verdict(SetClock(device_time=T0 + 300), state).accepted
    assert refused_by(SetClock(device_time=T0 + 301), state) == {"CLOCK-001"}
    assert refused_by(SetClock(device_time=T0 - 10), state) == {"CLOCK-001"}  # deliveries up to T0


@rule("CLOCK-001")
def test_clock_never_moves_back_past_a_recorded_event() -> None:
    # found by the stateful property test: with an empty reservoir nothing is delivered, but a
    # refill (or any other record) must still stay in the past
    empty = replace(programmed(), reservoir_scaled=0)
    empty, _ = advance(empty, T0 + 3600)
    assert verdict(SetClock(device_time=T0 + 3500), empty).accepted
    refilled = refill_staged(empty)
    assert refused_by(SetClock(device_time=T0 + 3500), refilled) == {"CLOCK-001"}


def test_refusal_raises_with_every_rule_id() -> None:
    v = verdict(SetRate(rate_ul_day=5_000), programmed())
    assert not v.accepted
    with pytest.raises(SafetyViolation) as info:
        v.raise_if_refused()
    assert set(info.value.rule_ids) == {"DOSE-001", "DOSE-002", "TITR-001", "FLEX-003"}


def test_commit_of_a_valid_staged_prescription_is_accepted() -> None:
    staged = apply(programmed(), stage())
    assert verdict(commit(staged), staged).accepted


@rule("STOP-001")
@pytest.mark.parametrize(
    "nothing_flows",
    ["empty", "stalled", "refill begun while suspended"],
)
def test_a_session_ending_while_nothing_flows_needs_the_acknowledgement(nothing_flows: str) -> None:
    """Found writing the honest status: the rule looked at the programmed mode, not at what flows."""
    state = programmed()
    if nothing_flows == "empty":
        state = replace(state, reservoir_scaled=0)
    elif nothing_flows == "stalled":
        state = replace(state, motor_stalled=True)
    else:
        state = apply(apply(state, Suspend(duration_s=0)), RefillBegin())
    assert "STOP-001" in refused_by(SessionEnd(), state)
    assert "STOP-001" not in refused_by(SessionEnd(ack=ack("STOP-001")), state)


# --- boundaries pinned by mutation testing: each limit from both sides ------------------------------------


@rule("BOL-001")
def test_a_bolus_of_exactly_the_absolute_maximum_is_allowed() -> None:
    state = programmed(prescription(max_bolus_ng=200_000, max_daily_dose_ng=2_000_000))
    assert "BOL-001" not in refused_by(bolus(volume=400, duration=4 * 3600), state)  # 200 µg
    assert "BOL-001" in refused_by(bolus(volume=401, duration=4 * 3600), state)


@rule("BOL-001")
def test_a_bolus_tip_dose_is_rounded_up() -> None:
    # a bolus of 400 µL pushes 1/86 400 µL of 2000 µg/mL ahead of 500 µg/mL drug: a hair over 200 µg
    state = programmed(prescription(max_bolus_ng=200_000, max_daily_dose_ng=2_000_000))
    state = replace(state, path=Path((Segment(1, 2000), Segment(250 * SCALE - 1, 500))))
    assert "BOL-001" in refused_by(bolus(volume=400, duration=4 * 3600), state)


@rule("BRIDGE-001")
def test_the_bridge_window_and_volume_include_their_bounds() -> None:
    state = replace(programmed(), concentration_changed_at=T0 - DAY)  # exactly the window ago
    assert "BRIDGE-001" not in refused_by(bolus(volume=250, duration=36_000, kind=BolusKind.BRIDGE), state)


@rule("PBOL-002")
def test_patient_boluses_are_counted_over_the_last_24_h_exactly() -> None:
    state = programmed(prescription(patient=replace(prescription().patient, lockout_s=60)))
    record = BolusRecord(start=T0 - DAY, kind=BolusKind.PATIENT, volume_ul=10, dose_ng=5_000)
    three = (record, replace(record, start=T0 - DAY + 1), replace(record, start=T0 - DAY + 2))
    assert "PBOL-002" not in refused_by(bolus(10, 600, BolusKind.PATIENT), replace(state, boluses=three))
    later = tuple(replace(b, start=b.start + 1) for b in three)
    assert "PBOL-002" in refused_by(bolus(10, 600, BolusKind.PATIENT), replace(state, boluses=later))


@rule("BOL-002")
def test_after_75_ug_without_response_comes_100_ug() -> None:
    state = empty_pump(SCREENING, concentration_ug_ml=50)
    for day, volume in enumerate((1000, 1500)):
        state, _ = advance(state, T0 + day * DAY)
        state = apply(state, bolus(volume=volume))
        state = apply(state, RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0))
    state, _ = advance(state, T0 + 2 * DAY)
    assert "BOL-002" not in refused_by(bolus(volume=2000), state)


@rule("ALARM-001")
def test_re_annunciation_at_the_limit_is_allowed() -> None:
    period = AlarmThresholds(
        low_reservoir_ul=2_000, low_reservoir_days=7, eri_lead_days=90, reannunciate_s=3_600
    )
    assert verdict(SetThresholds(thresholds=period), programmed()).accepted


@rule("CLOCK-001")
def test_the_clock_may_be_set_to_the_last_event() -> None:
    state = replace(programmed(), last_event_at=T0 - 100)
    assert "CLOCK-001" not in refused_by(SetClock(device_time=T0 - 100), state)
    assert "CLOCK-001" in refused_by(SetClock(device_time=T0 - 101), state)


@rule("REFILL-003")
def test_a_discrepancy_must_pass_both_the_floor_and_the_percentage() -> None:
    state = replace(programmed(), reservoir_scaled=2_000 * SCALE)  # expected 2 mL: 20 % is 400 µL, floor 500
    at_floor = refill_staged(state, volume=10_000, measured=1_500)
    assert "REFILL-003" not in refused_by(confirm(at_floor, volume=10_000), at_floor)
    past = refill_staged(state, volume=10_000, measured=1_499)
    assert "REFILL-003" in refused_by(confirm(past, volume=10_000), past)


@rule("REFILL-001")
@rule("REFILL-002")
def test_staging_before_the_residual_is_a_missing_step_not_an_overfill() -> None:
    state = apply(programmed(), RefillBegin())
    stage_all = RefillStageDrug(refill_id=rid(state), volume_ul=20_000, concentration_ug_ml=500)
    assert refused_by(stage_all, state) == {"REFILL-002"}


@rule("POLICY-001")
def test_a_policy_names_every_bad_key_and_never_crashes_on_one() -> None:
    with pytest.raises(PolicyError) as info:
        SafetyPolicy(load_rules(), {"TITR-001.spinal.pct": 20, "NOPE-001.x": 1})
    assert "TITR-001.spinal.pct" in str(info.value)
    assert "NOPE-001.x" in str(info.value)


@rule("TITR-001")
def test_a_running_bolus_is_not_a_new_daily_dose() -> None:
    state = programmed(prescription(max_daily_dose_ng=900_000, max_bolus_ng=100_000))
    state = apply(state, bolus(volume=150, duration=3600))  # 75 µg now
    assert "TITR-001" not in refused_by(SetRate(rate_ul_day=1040), state)  # +30 %


def test_reasons_show_spans_doses_and_risks_as_people_read_them() -> None:
    spans = (span(DAY + 3 * 3600 + 5 * 60 + 59), span(3600), span(59))
    assert spans == ("1 d 3 h 5 min", "1 h", "59 s")
    assert mg_day(400_000 * DAY + 1) == str(DoseRate(400_001))
    risky = programmed(record=patient(risks=frozenset(WithdrawalRisk)))
    (reason,) = verdict(Suspend(duration_s=600), risky).unacknowledged
    assert reason.reason == (
        "delivery stops for 10 min: a withdrawal risk (withdrawal risk: spinal cord injury at T6 or above, "
        "communication difficulties, a withdrawal before)"
    )
    (until,) = verdict(Suspend(duration_s=0), programmed()).unacknowledged
    assert until.reason == "delivery stops until resumed: a withdrawal risk"
    stopped = replace(risky, mode=TherapyMode.STOPPED)
    (stop,) = verdict(SessionEnd(), stopped).unacknowledged
    assert stop.reason.endswith("communication difficulties, a withdrawal before)")


def test_refill_reasons_say_what_may_still_be_in_and_how_long_it_lasts() -> None:
    state = replace(programmed(prescription(rate=200)), reservoir_scaled=2_000 * SCALE)
    over = refill_staged(state, volume=20_000, measured=1_000)
    (overfill,) = verdict(replace(confirm(over), ack=ack("REFILL-003")), over).violations
    assert "1 mL that may still be in it" in overfill.reason
    long = refill_staged(state, volume=15_500, measured=2_000)
    (stability,) = verdict(confirm(long, volume=15_500), long).unacknowledged
    assert stability.reason.startswith("15.5 mL lasts 77 days; the drug is stable 77 days")

"""The therapy model and dose math: exact delivery, forecasts, the window sweep against brute force."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples
from factories import DAY, T0, confirm, empty_pump, patient, prescription, programmed, refill_staged
from itbproto.core.therapy import (
    SCALE,
    Flow,
    TherapyState,
    advance,
    apply,
    bolus_flows,
    dose_between,
    max_window_dose,
)
from itbproto.core.therapy.alarms import alarm_state, quiet, sound_again
from itbproto.core.therapy.commands import bridge_duration_s
from itbproto.core.therapy.flows import seconds_until_volume
from itbproto.core.therapy.fluid import Path, Segment
from itbproto.core.therapy.forecast import bridge_bolus, forecast, priming_bolus
from itbproto.core.therapy.schedule import daily_dose_scaled, prescription_flows, rescale
from itbproto.core.therapy.state import BolusRecord
from itbproto.core.wire import (
    AlarmCode,
    AlarmRecord,
    BolusKind,
    BolusStart,
    FlexStep,
    PatientGroup,
    PeriodicBolus,
    Phase,
    PrescriptionMode,
    Procedure,
    RecordProcedure,
    RecordScreeningResponse,
    ScreeningResponse,
    SetPatientRecord,
    SetRate,
    Severity,
    Suspend,
    TherapyMode,
)
from itbproto.errors import TherapyStateError
from itbproto.io.specfiles import load_drug, load_profile

flows_st = st.lists(
    st.builds(
        lambda a, length, rate, conc: Flow(a, a + length, rate, conc),
        st.integers(0, 400_000),
        st.integers(0, 200_000),
        st.integers(0, 30_000),
        st.sampled_from([50, 500, 1000, 2000]),
    ),
    max_size=12,
)


def brute_max(flows: list[Flow], window: int) -> Fraction:
    starts = {b - d for f in flows for b in (f.start, f.end) for d in (0, window)}
    return max(
        (
            sum(
                (Fraction(f.rate_ul_day * f.conc_ug_ml * f.overlap(t, t + window)) for f in flows),
                Fraction(0),
            )
            for t in starts
        ),
        default=Fraction(0),
    )


@given(flows_st, st.sampled_from([DAY, 3_600, 50_000]))
def test_window_sweep_equals_brute_force(flows: list[Flow], window: int) -> None:
    assert max_window_dose(flows, window) == brute_max(flows, window)


@given(st.integers(1, 100_000), st.integers(1, DAY), st.integers(0, 10**6))
def test_bolus_flows_deliver_exactly_the_volume(volume: int, duration: int, start: int) -> None:
    flows = bolus_flows(volume, duration, start, 500)
    assert sum(f.volume_scaled for f in flows) == volume * SCALE
    assert flows[0].start == start
    assert flows[0].rate_ul_day * duration <= volume * SCALE  # never faster than V over D


def test_flex_schedule_daily_dose_is_exact() -> None:
    p = prescription(
        mode=PrescriptionMode.FLEX,
        steps=(FlexStep(start_s=0, rate_ul_day=720), FlexStep(start_s=7 * 3600, rate_ul_day=880)),
        boluses=(PeriodicBolus(start_s=8 * 3600, volume_ul=20, duration_s=900),),
    )
    expected = (720 * 7 * 3600 + 880 * 17 * 3600 + 20 * SCALE) * 500
    assert daily_dose_scaled(p) == expected
    assert dose_between(prescription_flows(p, T0, T0 + DAY), T0, T0 + DAY) == expected
    # any 24 h of a periodic schedule holds one day's dose
    assert max_window_dose(prescription_flows(p, T0, T0 + 3 * DAY), DAY, T0, T0 + DAY) == expected


def test_advance_delivers_the_schedule_and_drains_the_reservoir() -> None:
    state = programmed(history_days=0)  # 800 µL/day
    state, flows = advance(state, T0 + DAY)
    assert sum(f.volume_scaled for f in flows) == 800 * SCALE
    assert state.reservoir_ul == 20_000 - 800


def test_timed_suspension_resumes_by_itself() -> None:
    state = apply(programmed(history_days=0), Suspend(duration_s=3600))
    state, flows = advance(state, T0 + 2 * 3600)
    assert state.mode is TherapyMode.INFUSING
    assert sum(f.volume_scaled for f in flows) == 800 * 3600


def test_forecast_of_a_continuous_prescription() -> None:
    state = programmed(history_days=0)  # 800 µL/day from 20 mL: empty in 25 days
    f = forecast(state)
    assert f.empty_at == T0 + 25 * DAY
    assert f.low_reservoir_at == T0 + 18 * DAY  # 7 days before empty beats 2 mL left (day 22.5)
    assert f.refill_by == f.low_reservoir_at
    assert f.days_until(f.empty_at, T0) == 25
    slow = programmed(prescription(rate=48), reservoir_scaled=48 * 399 * SCALE)
    assert forecast(slow).empty_at == T0 + 399 * DAY
    beyond = programmed(prescription(rate=48), reservoir_scaled=48 * 401 * SCALE)
    assert forecast(beyond).empty_at is None  # past the 400-day horizon
    stopped = forecast(empty_pump())
    assert stopped.empty_at is None
    assert stopped.refill_by == stopped.stability_ends_at == T0 + 77 * DAY


def test_rescale_keeps_the_dose_or_lowers_it() -> None:
    p = prescription(rate=801)
    q = rescale(p, 2000, 1)
    assert q.steps[0].rate_ul_day == 200  # 400.5 µg/day -> 400 µg/day, rounded down
    assert daily_dose_scaled(q) <= daily_dose_scaled(p)


def test_bridge_and_priming_boluses() -> None:
    # the bridge: the 250 µL path of 500 µg/mL (125 µg) at the prescribed 400 µg/day
    bridge = bridge_bolus(programmed())
    assert (bridge.kind, bridge.volume_ul, bridge.duration_s) == (BolusKind.BRIDGE, 250, 27_000)
    # priming after a catheter revision: only the new catheter (120 µL) holds saline
    revised = apply(
        programmed(), RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=120)
    )
    prime = priming_bolus(revised, 3600)
    assert (prime.kind, prime.volume_ul, prime.duration_s) == (BolusKind.PRIMING, 120, 3600)
    with pytest.raises(TherapyStateError):
        bridge_bolus(empty_pump())


def test_state_history_is_bounded() -> None:
    state = programmed(history_days=0)
    for day in range(1, 10):
        state, _ = advance(state, T0 + day * DAY)
    assert all(f.end > state.now - 2 * DAY for f in state.delivered)


def test_out_of_order_steps_are_total_not_a_crash() -> None:
    # found by the any-message property: the rules must be able to refuse (FLEX-002) what they look at
    p = prescription(
        mode=PrescriptionMode.FLEX,
        steps=(FlexStep(start_s=3600, rate_ul_day=800), FlexStep(start_s=0, rate_ul_day=400)),
    )
    assert daily_dose_scaled(p) == 400 * 86_400 * 500  # only the well-ordered part delivers
    assert all(f.end > f.start for f in prescription_flows(p, T0, T0 + DAY))


# --- pinned by mutation testing: each boundary and each field the model sets ---------------------------


def test_rescale_rounds_rates_down_to_the_step_and_drops_boluses_that_vanish() -> None:
    p = prescription(
        rate=1000,
        boluses=(
            PeriodicBolus(start_s=0, volume_ul=20, duration_s=900),
            PeriodicBolus(start_s=3600, volume_ul=3, duration_s=900),
        ),
    )
    strong = rescale(p, 2000, 7)  # 1000 µL/day of 500 = 250 µL/day of 2000, 245 on a 7 µL/day step
    assert strong.concentration_ug_ml == 2000
    assert [s.rate_ul_day for s in strong.steps] == [245]
    assert [(b.start_s, b.volume_ul) for b in strong.boluses] == [(0, 5)]  # 3 µL -> 0.75: dropped
    weak = rescale(p, 50, 1)
    assert [s.rate_ul_day for s in weak.steps] == [10_000]
    assert [b.volume_ul for b in weak.boluses] == [200, 30]


def test_bolus_flows_need_volume_and_time_and_never_go_below_one_unit() -> None:
    for volume, duration in [(0, 600), (10, 0), (-1, 600)]:
        with pytest.raises(ValueError, match="positive"):
            bolus_flows(volume, duration, T0, 500)
    assert bolus_flows(1, 100_000, T0, 500) == (Flow(T0, T0 + 86_400, 1, 500),)  # slower than 1 unit/s


def test_split_at_and_between_segment_boundaries() -> None:
    path = Path((Segment(10, 2000), Segment(30, 500), Segment(5, 0)))
    assert path.split(10) == (Path((Segment(10, 2000),)), Path((Segment(30, 500), Segment(5, 0))))
    assert path.split(25) == (
        Path((Segment(10, 2000), Segment(15, 500))),
        Path((Segment(15, 500), Segment(5, 0))),
    )
    assert path.split(0) == (Path(()), path)
    assert path.split(45) == (path, Path(()))


def test_the_forecast_follows_the_reservoir_for_months() -> None:
    state = programmed(prescription(rate=200), reservoir_scaled=19_000 * SCALE)  # 95 days at 200 µL/day
    f = forecast(state)
    assert f.empty_at == T0 + 95 * DAY
    assert f.low_reservoir_at == T0 + 85 * DAY  # 2 mL left (10 days) comes before 7 days left
    assert f.days_until(f.empty_at, T0) == 95
    assert isinstance(f.days_until(T0 + DAY + 1, T0), int)
    assert f.days_until(None, T0) is None
    assert f.refill_by == min(f.stability_ends_at, T0 + 85 * DAY)
    slow = programmed(prescription(rate=48), reservoir_scaled=48 * 399 * SCALE)
    assert forecast(slow).empty_at == T0 + 399 * DAY
    beyond = programmed(prescription(rate=48), reservoir_scaled=48 * 401 * SCALE)
    assert forecast(beyond).empty_at is None  # past the 400-day horizon
    stopped = forecast(empty_pump())
    assert (stopped.empty_at, stopped.low_reservoir_at) == (None, None)
    assert stopped.refill_by == stopped.stability_ends_at


def test_boluses_get_new_ids_and_only_clinician_boluses_in_screening_are_screening_doses() -> None:
    state = programmed(prescription(max_bolus_ng=200_000))
    first = apply(state, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=10, duration_s=600))
    assert first.bolus is not None
    assert (first.bolus.bolus_id, first.next_id) == (state.next_id, state.next_id + 1)
    assert not first.boluses[-1].screening  # therapy, not screening
    assert not first.bridge_given
    ended, _ = advance(first, T0 + 600)
    again = apply(ended, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=10, duration_s=600))  # at its end
    assert again.bolus is not None
    with pytest.raises(TherapyStateError):
        apply(again, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=10, duration_s=600))
    screening = empty_pump(patient(phase=Phase.SCREENING))
    patient_bolus = apply(screening, BolusStart(kind=BolusKind.PATIENT, volume_ul=10, duration_s=600))
    assert not patient_bolus.boluses[-1].screening
    dose = apply(screening, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=100, duration_s=600))
    assert dose.boluses[-1].screening


def test_a_screening_response_goes_to_the_last_screening_dose_only() -> None:
    state = empty_pump(patient(phase=Phase.SCREENING))
    state = apply(state, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=100, duration_s=600))
    state, _ = advance(state, T0 + 600)
    state = apply(state, RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0))
    state, _ = advance(state, T0 + DAY)
    state = apply(state, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=150, duration_s=600))
    state, _ = advance(state, T0 + DAY + 600)
    state = apply(state, BolusStart(kind=BolusKind.PATIENT, volume_ul=10, duration_s=600))  # (no rules here)
    state = apply(state, RecordScreeningResponse(response=ScreeningResponse.EFFECTIVE, effect_s=3600))
    assert [b.response for b in state.boluses] == [
        ScreeningResponse.NONE,
        ScreeningResponse.EFFECTIVE,
        ScreeningResponse.PENDING,
    ]
    assert state.record.screening_dose_ng == 75_000
    with pytest.raises(TherapyStateError):
        apply(state, RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0))
    with pytest.raises(TherapyStateError):
        apply(state, RecordScreeningResponse(response=ScreeningResponse.PENDING, effect_s=0))


def test_a_refill_restarts_the_drugs_age_and_a_new_concentration_the_bridge() -> None:
    state = replace(programmed(), bridge_given=True, filled_at=T0 - 50 * DAY)
    same = refill_staged(state, volume=10_000)
    refilled = apply(same, confirm(same, volume=10_000))
    assert refilled.filled_at == T0
    assert refilled.bridge_given  # the same drug: nothing to bridge anew
    strong = refill_staged(state, volume=5_000, conc=2000)
    changed = apply(strong, confirm(strong, volume=5_000, conc=2000))
    assert (changed.concentration_changed_at, changed.bridge_given) == (T0, False)
    bridged = apply(strong, replace(confirm(strong, volume=5_000, conc=2000), bridge=True))
    assert bridged.bridge_given
    assert bridged.bolus is not None
    assert bridged.bolus.volume_ul == 250


def test_a_new_catheter_is_remembered() -> None:
    state = apply(
        programmed(), RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=150)
    )
    assert state.catheter_ul == 150
    replaced = apply(state, RecordProcedure(procedure=Procedure.PUMP_REPLACEMENT, catheter_volume_ul=0))
    assert replaced.path.volume_scaled == (150 + 130) * SCALE  # the new pump's tubing and the same catheter


def test_bridge_durations_round_up_and_last_at_least_a_second() -> None:
    state = programmed()  # 250 µL of 500 µg/mL: 125 µg at 400 µg/day = 27 000 s
    assert bridge_duration_s(state) == 27_000
    odd = replace(state, path=Path((Segment(250 * SCALE + 1, 500),)))
    assert bridge_duration_s(odd) == 27_001  # a hair more drug: a second more, never faster
    saline = replace(state, path=Path((Segment(250 * SCALE + 1, 0),)))
    assert bridge_duration_s(saline) == 901  # by the bolus rate, rounded up
    nothing = replace(state, path=Path(()))
    assert bridge_duration_s(nothing) == 1
    idle = replace(state, prescription=prescription(steps=(FlexStep(start_s=0, rate_ul_day=0),)))
    assert bridge_duration_s(idle) == DAY


def test_bridge_and_priming_volumes_are_whole_microlitres() -> None:
    state = programmed()
    assert type(bridge_bolus(state).volume_ul) is int
    revised = apply(state, RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=120))
    assert type(priming_bolus(revised, 600).volume_ul) is int


def test_alarms_are_quieted_one_at_a_time() -> None:
    thresholds = empty_pump().thresholds
    low = AlarmRecord(
        alarm_id=1,
        code=AlarmCode.LOW_RESERVOIR,
        severity=Severity.NON_CRITICAL,
        raised_at=T0,
        silenced_until=0,
        acknowledged=False,
    )
    stall = replace(low, alarm_id=2, code=AlarmCode.MOTOR_STALL, severity=Severity.CRITICAL)
    after = quiet((low, stall), 1, T0 + 5, None, thresholds)
    assert after == (replace(low, acknowledged=True), stall)
    assert alarm_state(after[0]) == "acknowledged"
    critical = quiet((low, stall), 2, T0 + 5, None, thresholds)
    assert critical[1] == replace(stall, acknowledged=True, silenced_until=T0 + 5 + thresholds.reannunciate_s)
    assert alarm_state(critical[1]) == "silenced"
    assert sound_again(critical[1]) == stall
    assert alarm_state(stall) == "sounding"


def brute_max_in(flows: list[Flow], window: int, since: int, until: int) -> Fraction:
    """The largest dose in a window starting in [since, until]: at its ends or where a start or end meets a
    breakpoint (the dose is piecewise linear in the start)."""
    if until < since:
        return Fraction(0)
    kinks = {b - d for f in flows for b in (f.start, f.end) for d in (0, window)}
    starts = {since, until} | {t for t in kinks if since <= t <= until}
    return max(
        sum((Fraction(f.rate_ul_day * f.conc_ug_ml * f.overlap(t, t + window)) for f in flows), Fraction(0))
        for t in starts
    )


@settings(max_examples=examples(300))
@given(
    flows_st,
    st.sampled_from([DAY, 3_600, 50_000]),
    st.integers(-100_000, 700_000),
    st.integers(-100_000, 700_000),
)
def test_window_sweep_in_a_range_equals_brute_force(
    flows: list[Flow], window: int, since: int, until: int
) -> None:
    expected = brute_max_in(flows, window, since, until) if flows else 0
    assert max_window_dose(flows, window, since=since, until=until) == expected


def test_window_sweep_at_its_edges() -> None:
    flows = [Flow(0, 100, 86_400, 1), Flow(200, 300, 2 * 86_400, 1)]
    assert max_window_dose(flows, 50, since=120, until=120) == 0  # one window, between the flows
    assert max_window_dose(flows, 50, since=150, until=150) == 0
    assert max_window_dose(flows, 50, since=160, until=160) == 10 * 2 * 86_400
    assert max_window_dose(flows, 50, since=10, until=5) == 0  # an empty range
    assert max_window_dose(flows, 50, since=-500, until=0) == 50 * 86_400  # long before the first flow
    assert max_window_dose(flows, 50, since=0, until=220) == 50 * 2 * 86_400  # the later, richer flow
    assert max_window_dose(flows, 50, since=0, until=150) == 50 * 86_400  # not looking that far


def test_seconds_until_a_volume_at_its_edges() -> None:
    flows = (Flow(100, 200, 86_400, 1),)  # 1 µL a second from 100 s
    assert seconds_until_volume(flows, 0, 0) == 0
    assert seconds_until_volume(flows, 0, 1) == 100  # the first second of flow carries it, from 100
    assert seconds_until_volume(flows, 0, 100 * 86_400) == 200  # exactly all of it: at its end
    assert seconds_until_volume(flows, 0, 100 * 86_400 + 1) is None
    assert seconds_until_volume(flows, 100, 86_400) == 1
    assert seconds_until_volume(flows, 150, 50 * 86_400) == 50


def test_a_timed_suspension_resumes_at_its_time_exactly() -> None:
    state = apply(programmed(history_days=0), Suspend(duration_s=3600))
    at_end, flows = advance(state, T0 + 3600)
    assert (at_end.mode, at_end.suspended_until) == (TherapyMode.INFUSING, 0)
    assert flows == ()
    _, more = advance(at_end, T0 + 7200)
    assert sum(f.volume_scaled for f in more) == 800 * 3600
    still, _ = advance(state, T0 + 3599)
    assert (still.mode, still.suspended_until) == (TherapyMode.SUSPENDED, T0 + 3600)


def test_a_bolus_ends_at_its_end_or_when_the_reservoir_runs_dry() -> None:
    state = apply(programmed(), BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=3600))
    assert state.bolus is not None
    ended, _ = advance(state, state.bolus.end)
    assert ended.bolus is None
    running, _ = advance(state, state.bolus.end - 1)
    assert running.bolus is not None
    dry = apply(
        replace(programmed(), reservoir_scaled=10 * SCALE),
        BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=3600),
    )
    dry, _ = advance(dry, T0 + 600)
    assert (dry.reservoir_scaled, dry.bolus) == (0, None)


def test_histories_are_kept_for_their_time_and_the_entry_in_force_before() -> None:
    state = programmed(history_days=0)
    for day in (1, 2, 3):
        state = apply(state, SetRate(rate_ul_day=800 + day * 10))
        state, _ = advance(state, T0 + day * DAY)
    state = replace(state, boluses=(BolusRecord(T0 + DAY, BolusKind.CLINICIAN, 10, 5000),))
    later, _ = advance(state, T0 + 8 * DAY)  # 7 days kept: the entry in force at the edge too
    # raised at T0, T0 + 1 d and T0 + 2 d; at T0 + 8 d the one in force 7 days before (T0 + 1 d) and later
    assert [e.since for e in later.dose_log] == [T0 + DAY, T0 + 2 * DAY]
    edge, _ = advance(state, T0 + 2 * DAY + 2 * DAY)  # boluses are kept 2 days
    assert edge.boluses == ()
    record = replace(state.record, group=PatientGroup.CHILD)
    relabelled = apply(
        state,
        SetPatientRecord(group=record.group, origin=record.origin, risks=record.risks, phase=record.phase),
    )
    kept, _ = advance(relabelled, relabelled.now + 7 * DAY)
    assert kept.records[-1] == (relabelled.now, record)
    assert len(kept.records) == 1  # the one in force 7 days ago: the relabelling
    young, _ = advance(relabelled, relabelled.now + DAY)
    assert len(young.records) == 2  # both in force within the last 7 days


def test_a_pump_that_never_delivered_says_so() -> None:
    state = TherapyState.new(
        now=0, profile=load_profile("itb-20"), drug=load_drug(), concentration_ug_ml=500, reservoir_ul=9_000
    )
    quiet, _ = advance(state, DAY)
    assert (quiet.last_delivery_at, quiet.last_event_at) == (0, 0)

"""What the pump reports and records: status, history, the event log, alarm moves, its saved state."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from factories import DAY, T0, ack, confirm, patient, programmed, refill_staged
from itbproto.core.machines.pump import snapshot
from itbproto.core.machines.pump.handlers import event_value
from itbproto.core.machines.pump.reports import history, status
from itbproto.core.therapy import SCALE, Battery, TherapyState, advance, apply
from itbproto.core.wire import (
    Ack,
    AlarmAcknowledge,
    AlarmCode,
    AlarmSilence,
    BolusKind,
    BolusStart,
    ErrorCode,
    EventCode,
    MriBegin,
    Nack,
    Procedure,
    RecordProcedure,
    RecordScreeningResponse,
    ScreeningResponse,
    SetRate,
    TherapyHistory,
    decode,
    encode,
)
from itbproto.errors import SpecError
from itbproto.io.specfiles import load_drug, load_profile
from machines_link import answer, new_pump


def test_status_reports_the_bolus_left_and_the_last_day_rounded_up() -> None:
    pump = new_pump(programmed())
    answer(pump, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=3600), 1, T0)
    pump.tick(T0 + 900)
    report = status(pump.state)
    assert report.bolus_remaining_ul == 30  # a quarter given
    profile = load_profile("itb-20")  # 2 200 C; 7 µA idle and 0.4 mC per µL, here at 0.8 mL/day
    assert (profile.battery_capacity_mc, profile.battery_idle_na, profile.motor_nc_per_ul) == (
        2_200_000,
        7_000,
        400_000,
    )
    daily = (7_000 * 86_400 + 400_000 * 800) * 86_400  # nC × 86 400
    assert report.battery_days == pump.therapy.charge_scaled // daily
    assert 2_370 < report.battery_days < 2_200_000 * 1_000_000 * 86_400 // daily == 2_378
    exact = 400_000 + 10 * 500  # a day of basal, and the 10 µL of the bolus given so far
    assert report.delivered_24h_ng == exact
    pump.drain_battery(100, T0 + 900)
    assert status(pump.state).battery_days == 0


def test_history_is_cut_to_the_frame_and_says_so() -> None:
    state = programmed()
    for hour in range(1, 7):  # a rate change every hour: one flow each
        state, _ = advance(state, T0 + hour * 3600)
        state = apply(state, SetRate(rate_ul_day=800 + (hour % 2) * 8))
    whole = history(state, 1045)
    assert whole.complete
    assert len(whole.flows) > 5
    cut = history(state, 272)
    assert not cut.complete
    assert 0 < len(cut.flows) < len(whole.flows)
    assert cut.flows == whole.flows[-len(cut.flows) :]  # the newest kept
    assert len(encode(cut, txn=1)) <= 272
    assert decode(encode(cut, txn=1)).message == cut


def test_history_of_a_pump_started_at_time_zero() -> None:
    state = TherapyState.new(
        now=0, profile=load_profile("itb-20"), drug=load_drug(), concentration_ug_ml=500, reservoir_ul=9_000
    )
    report = history(state, 1045)
    assert (report.filled_at, report.last_delivery_at, report.concentration_changed_at) == (0, 0, 0)
    assert report.path[0].volume_scaled == 250 * SCALE
    assert report.complete


def test_event_values_keep_the_number_that_matters() -> None:
    assert event_value(SetRate(rate_ul_day=880)) == 880
    assert event_value(RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=0)) == int(
        Procedure.CATHETER_REVISION
    )
    response = RecordScreeningResponse(response=ScreeningResponse.EFFECTIVE, effect_s=3600)
    assert event_value(response) == int(ScreeningResponse.EFFECTIVE)
    assert event_value(MriBegin(emptied_ul=7_000)) == 7_000
    assert event_value(AlarmAcknowledge(alarm_id=9)) == 9


def test_alarms_move_as_their_table_says_and_are_logged() -> None:
    pump = new_pump(replace(programmed(), reservoir_scaled=1_000 * SCALE))  # low: not critical
    pump.tick(T0 + 1)
    (low,) = pump.therapy.alarms
    assert low.code is AlarmCode.LOW_RESERVOIR
    assert isinstance(answer(pump, AlarmAcknowledge(alarm_id=low.alarm_id), 1, T0 + 2), Ack)
    before = pump.therapy.alarms
    again = answer(pump, AlarmAcknowledge(alarm_id=low.alarm_id), 2, T0 + 3)  # users retry: no error
    assert isinstance(again, Ack)
    assert pump.therapy.alarms == before
    silence = answer(pump, AlarmSilence(alarm_id=low.alarm_id, duration_s=600), 3, T0 + 4)
    assert isinstance(silence, Nack)  # an acknowledged alarm is quiet until it clears: nothing to silence
    assert silence.code is ErrorCode.WRONG_STATE
    events = [(e.code, e.txn, e.value) for e in pump.log.page(0, 100)]
    assert (EventCode.ALARM_RAISED, 0, int(AlarmCode.LOW_RESERVOIR)) in events
    assert (EventCode.ALARM_ACKNOWLEDGED, 1, low.alarm_id) in events


def test_a_critical_alarm_acknowledged_is_silenced_for_its_period_then_clears() -> None:
    pump = new_pump(programmed())
    pump.set_motor_stalled(True, T0)
    (stall,) = pump.therapy.alarms
    assert isinstance(answer(pump, AlarmAcknowledge(alarm_id=stall.alarm_id), 1, T0 + 5), Ack)
    (quiet,) = pump.therapy.alarms
    assert quiet.acknowledged
    assert quiet.silenced_until == T0 + 5 + pump.therapy.thresholds.reannunciate_s
    pump.set_motor_stalled(False, T0 + 10)
    assert pump.therapy.alarms == ()
    events = [(e.code, e.value) for e in pump.log.page(0, 100)]
    assert (EventCode.ALARM_CLEARED, int(AlarmCode.MOTOR_STALL)) in events


def test_acknowledgements_are_logged_with_who() -> None:
    pump = new_pump(programmed())
    reply = answer(pump, SetRate(rate_ul_day=400, ack=ack("DECR-001")), 1, T0)
    assert isinstance(reply, Ack)
    (entry,) = [e for e in pump.log.page(0, 100) if e.code is EventCode.ACKNOWLEDGED]
    assert (entry.txn, entry.detail) == (1, "DECR-001 by test")


def rich() -> TherapyState:
    """A state with something in every part: records, a bridge, a path of two drugs, alarms, doses."""
    state = programmed(record=patient(screening_effect_s=9 * 3600))
    strong = refill_staged(state, volume=5_000, conc=2000)
    state = apply(strong, replace(confirm(strong, volume=5_000, conc=2000), bridge=True))
    state, _ = advance(state, T0 + 3600)
    return replace(state, battery=Battery.ERI, filled_at=T0 - DAY)


@pytest.mark.parametrize("make", [programmed, rich])
def test_the_saved_state_restores_exactly(make: object) -> None:
    pump = new_pump(make())  # type: ignore[operator]
    pump.set_motor_stalled(True, T0)
    answer(pump, SetRate(rate_ul_day=810), 1, T0 + 60)
    saved = json.loads(json.dumps(snapshot.dump(pump.state)))
    assert snapshot.load(saved) == pump.state
    assert isinstance(saved, dict)


def test_a_saved_state_that_is_not_one_is_refused() -> None:
    saved = snapshot.dump(new_pump(programmed()).state)
    assert isinstance(saved, dict)
    with pytest.raises(SpecError, match=f"format-{snapshot.FORMAT}"):
        snapshot.load({**saved, "format": 4})  # before the pump's own holds: not read as if it had none
    with pytest.raises(SpecError, match="KeyError"):
        snapshot.load({"format": snapshot.FORMAT, "state": {}})
    state = saved["state"]
    assert isinstance(state, dict)
    with pytest.raises(SpecError, match="TypeError"):
        snapshot.load({**saved, "state": {**state, "last_txn": "7"}})


def test_history_round_trips_through_the_bytes() -> None:
    report = history(rich(), 1045)
    assert isinstance(report, TherapyHistory)
    assert decode(encode(report, txn=7)).message == report
    assert report.bridge_given
    assert report.concentration_changed_at == T0
    assert {s.concentration_ug_ml for s in report.path} == {500, 2000}

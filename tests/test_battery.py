"""The battery model: charge drained exactly by time and pumping, the indicators at their own second, the
replacement indicator at least its lead before the end, and delivery stopping there. Also the times
``next_event_at`` gives the emulator, and the hardware events that drain or discharge the pump."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factories import DAY, POLICY, T0, ack, empty_pump, in_force, prescription, programmed
from itbproto.core.machines.pump import PumpMachine
from itbproto.core.therapy import SCALE, TherapyState, advance, apply
from itbproto.core.therapy.battery import capacity_scaled, daily_drain_scaled, drain_scaled
from itbproto.core.therapy.forecast import next_event_at
from itbproto.core.therapy.state import REFILL_TIMEOUT_S, Battery
from itbproto.core.wire.enums import AlarmCode, EventCode, TherapyMode
from itbproto.core.wire.messages import RefillBegin, Suspend
from itbproto.io.specfiles import load_profile
from machines_link import answer, new_pump

PER_DAY_800 = (7_000 * DAY + 400_000 * 800) * DAY  # nC × 86 400 a day at 800 µL/day


def nearly_spent(days: float, p_rate: int = 800) -> TherapyState:
    """A programmed pump with ``days`` days of charge left at ``p_rate`` µL/day."""
    state = programmed(prescription(p_rate))
    return replace(state, charge_scaled=int(days * daily_drain_scaled(state.profile, state.prescription)))


def crossing(state: TherapyState, level: int) -> int:
    """The first second at which the charge is at or below ``level``, one second at a time."""
    lo, hi = state.now, state.now + 4_000 * DAY
    while hi - lo > 1:  # the charge falls monotonically: bisect on it
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if advance(state, mid)[0].charge_scaled <= level else (mid, hi)
    return hi


def test_the_drain_is_time_and_pumping_in_exact_integers() -> None:
    profile = load_profile("itb-20")
    assert capacity_scaled(profile) == 2_200_000 * 1_000_000 * SCALE
    assert drain_scaled(profile, 10, 5 * SCALE) == 7_000 * 10 * SCALE + 400_000 * 5 * SCALE
    assert daily_drain_scaled(profile, prescription(800)) == PER_DAY_800
    assert daily_drain_scaled(profile, None) == 7_000 * DAY * DAY
    state = programmed()
    after, _ = advance(state, T0 + 3_600)
    assert state.charge_scaled - after.charge_scaled == drain_scaled(profile, 3_600, 800 * 3_600)


@given(cuts=st.lists(st.integers(1, 40 * DAY), min_size=1, max_size=6))
def test_draining_in_any_steps_is_draining_at_once(cuts: list[int]) -> None:
    state = nearly_spent(30)
    end = T0 + sum(cuts)
    whole, _ = advance(state, end)
    stepped = state
    for t in sorted({T0 + sum(cuts[: i + 1]) for i in range(len(cuts))}):
        stepped, _ = advance(stepped, t)
    assert (stepped.charge_scaled, stepped.battery, stepped.reservoir_scaled) == (
        whole.charge_scaled,
        whole.battery,
        whole.reservoir_scaled,
    )


def test_the_replacement_indicator_latches_at_its_second_and_comes_the_lead_before_the_end() -> None:
    state = nearly_spent(100, 100)  # 100 days left at 100 µL/day (the reservoir lasts); the lead is 90
    eri_at = crossing(state, state.eri_reserve_scaled)
    eos_at = crossing(state, 0)
    assert advance(state, eri_at - 1)[0].battery is Battery.OK
    assert advance(state, eri_at)[0].battery is Battery.ERI
    assert advance(state, eos_at - 1)[0].battery is Battery.ERI
    assert advance(state, eos_at)[0].battery is Battery.EOS
    assert eos_at - eri_at >= state.thresholds.eri_lead_days * DAY  # BATT-002 on the model
    assert eos_at - eri_at < (state.thresholds.eri_lead_days + 1) * DAY
    assert eri_at - T0 in range(10 * DAY - 1, 10 * DAY + 1)
    # when the reservoir runs dry the motor stops: the end comes later than the lead, never sooner
    dry = nearly_spent(100)
    assert crossing(dry, 0) - crossing(dry, dry.eri_reserve_scaled) > 120 * DAY


def test_at_end_of_service_delivery_stops_at_its_second_and_the_charge_stays_spent() -> None:
    state = nearly_spent(0.5)
    eos_at = crossing(state, 0)
    after, tip = advance(state, T0 + DAY)
    assert after.battery is Battery.EOS
    assert after.charge_scaled == 0
    assert max(f.end for f in tip) == eos_at
    pumped = sum(f.volume_scaled for f in tip)
    assert drain_scaled(state.profile, eos_at - T0, pumped) >= state.charge_scaled
    assert drain_scaled(state.profile, eos_at - 1 - T0, pumped - 800) < state.charge_scaled
    later, more = advance(after, T0 + 3 * DAY)
    assert more == ()
    assert (later.charge_scaled, later.reservoir_scaled) == (0, after.reservoir_scaled)


def test_a_higher_programmed_volume_raises_the_indicator_at_once() -> None:
    state = nearly_spent(95)  # 95 days at 800 µL/day; at 1 600 µL/day that is less than the lead
    faster = in_force(state, prescription(1_600))
    pump = new_pump(faster)
    (note,) = pump.tick(T0)
    assert note.alarm.code is AlarmCode.BATTERY_ERI  # raised before time latches it
    latched = []
    for t in (T0, T0 + 1):
        pump.tick(t)
        latched.append(pump.therapy.battery)
    assert latched == [Battery.OK, Battery.ERI]  # and time latches it at its next step


@pytest.mark.parametrize("left_days", [0.001, 0.7, 3, 91, 400, 2_000])
def test_the_battery_event_is_never_late_and_reached_by_asking_again(left_days: float) -> None:
    state = nearly_spent(left_days)
    before = Battery.OK if left_days > 90 else Battery.ERI  # inside the lead, the next level is the end
    state = replace(state, battery=before)
    wanted = crossing(state, state.eri_reserve_scaled if before is Battery.OK else 0)
    asked = 0
    while state.battery is before:
        t = next_event_at(state)
        assert t is not None
        assert state.now < t <= wanted
        state, _ = advance(state, t)
        asked += 1
    assert state.now == wanted
    # besides the battery's own: the reservoir runs low and empty, the drug expires
    assert asked <= 4


def test_the_next_event_is_the_soonest_of_all_that_time_brings() -> None:
    state = programmed()
    # 18.4 mL at 800 µL/day: empty in 23 days, low 7 days before (sooner than at 2 mL, in 20.5 days)
    assert next_event_at(state) == T0 + (18_400 // 800 - 7) * DAY
    bolused = replace(state, bolus=None)
    assert next_event_at(bolused) == next_event_at(state)
    suspended = replace(state, mode=TherapyMode.SUSPENDED, suspended_until=T0 + 600)
    assert next_event_at(suspended) == T0 + 600
    refilling = in_refill(state)
    assert next_event_at(refilling) == T0 + REFILL_TIMEOUT_S
    expiring = replace(state, filled_at=T0 - state.drug.stability_days * DAY + 5)
    assert next_event_at(expiring) == T0 + 5
    dry, _ = advance(state, T0 + 30 * DAY)
    assert dry.empty
    wakes = next_event_at(dry)
    assert wakes is not None
    assert wakes > dry.now + DAY  # a dry pump has nothing to wake for each second
    idle = replace(empty_pump(), charge_scaled=capacity_scaled(load_profile("itb-20")))
    assert next_event_at(idle) == idle.stability_ends_at  # nothing flows: the drug's age, then the battery


def in_refill(state: TherapyState) -> TherapyState:
    return apply(state, RefillBegin())


def test_a_battery_drop_is_a_logged_fault_and_the_indicators_follow_the_charge() -> None:
    pump = new_pump(programmed())
    with pytest.raises(ValueError, match="percentage"):
        pump.drain_battery(101, T0)
    assert pump.drain_battery(30, T0) == ()
    assert pump.therapy.battery is Battery.OK
    assert pump.log.since(0)[-1].code is EventCode.FAULT
    assert pump.log.since(0)[-1].detail == "battery lost 30 %"
    (note,) = pump.drain_battery(68, T0 + 1)
    assert note.alarm.code is AlarmCode.BATTERY_ERI
    notes = pump.drain_battery(100, T0 + 2)
    assert {n.alarm.code for n in notes} == {AlarmCode.BATTERY_EOS}
    assert pump.mode == "end_of_service"
    assert pump.status().battery_days == 0


def test_a_magnetic_field_discharges_a_valve_pump_into_the_patient() -> None:
    state = replace(programmed(), profile=load_profile("itbv-20"))
    pump = PumpMachine.new(state, POLICY)
    pump.tick(T0 + 10)
    held, logged = pump.therapy.reservoir_ul, pump.log.total
    notes = pump.discharge(T0 + 10)
    assert pump.mode == "bolus"
    assert [e.code for e in pump.log.since(logged)][:2] == [EventCode.FAULT, EventCode.BOLUS_STARTED]
    assert pump.log.since(logged)[0].detail == f"valves open: {held} uL"
    assert {n.alarm.code for n in notes} == {AlarmCode.LOW_RESERVOIR}  # it empties within the days
    bolus = pump.therapy.bolus
    assert bolus is not None
    assert (bolus.bolus_id, bolus.volume_ul) == (0, held)
    pump.tick(bolus.end)
    delivered = sum(f.volume_scaled for f in pump.take_delivered())
    assert pump.therapy.reservoir_ul == 0
    assert delivered >= (held - 1) * SCALE  # all of it went out (the path holds what it held)
    assert pump.discharge(bolus.end + 1) == () or pump.therapy.reservoir_ul == 0


def test_a_suspended_pump_has_its_resume_as_an_event_and_delivers_nothing_till_then() -> None:
    pump = new_pump(programmed())
    answer(pump, Suspend(duration_s=3_600, ack=ack("STOP-002")), 1, T0)
    assert next_event_at(pump.therapy) == T0 + 3_600
    pump.tick(T0 + 3_600)
    assert pump.therapy.mode is TherapyMode.INFUSING

"""The therapy model and dose math: exact delivery, forecasts, the window sweep against brute force."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factories import DAY, T0, empty_pump, prescription, programmed
from itbproto.errors import TherapyStateError
from itbproto.therapy import SCALE, Flow, advance, apply, bolus_flows, dose_between, max_window_dose
from itbproto.therapy.forecast import bridge_bolus, forecast, priming_bolus
from itbproto.therapy.schedule import daily_dose_scaled, prescription_flows, rescale
from itbproto.wire import (
    BolusKind,
    FlexStep,
    PeriodicBolus,
    PrescriptionMode,
    Procedure,
    RecordProcedure,
    Suspend,
    TherapyMode,
)

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

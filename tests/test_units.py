"""Exact integer units: relations, rounding direction, refusal of mixed kinds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itbproto.units import (
    SECONDS_PER_DAY,
    Concentration,
    Dose,
    DoseRate,
    Duration,
    FlowRate,
    Rounding,
    Volume,
    daily_dose,
    divide,
    dose,
    duration_to_deliver,
    rate_for_daily_dose,
    volume_delivered,
    volume_for_dose,
)

amounts = st.integers(0, 10**9)
positive = st.integers(1, 10**6)


def test_dose_is_volume_times_concentration() -> None:
    # 1 mL of 50 µg/mL is the 50 µg screening dose
    assert dose(Volume.ml(1), Concentration(50)) == Dose.ug(50)
    # 0.88 mL/day of 500 µg/mL is 440 µg/day
    assert daily_dose(FlowRate(880), Concentration(500)) == DoseRate.ug_per_day(440)


def test_display_is_exact_decimal() -> None:
    assert str(Volume(2150)) == "2.15 mL"
    assert str(Dose(123)) == "0.123 µg"
    assert str(FlowRate(48)) == "0.048 mL/day"
    assert str(DoseRate(440_000)) == "0.44 mg/day"
    assert str(Volume(-140)) == "-0.14 mL"
    assert str(Concentration(500)) == "500 µg/mL"


@given(amounts, positive)
def test_divide_brackets_the_exact_quotient(numerator: int, denominator: int) -> None:
    down = divide(numerator, denominator, Rounding.DOWN)
    up = divide(numerator, denominator, Rounding.UP)
    assert down * denominator <= numerator <= up * denominator
    assert up - down == (0 if numerator % denominator == 0 else 1)


@given(amounts, positive)
def test_volume_for_dose_rounds_as_asked(ng: int, conc: int) -> None:
    low = volume_for_dose(Dose(ng), Concentration(conc), rounding=Rounding.DOWN)
    high = volume_for_dose(Dose(ng), Concentration(conc), rounding=Rounding.UP)
    assert dose(low, Concentration(conc)) <= Dose(ng) <= dose(high, Concentration(conc))


@given(st.integers(0, 100_000), st.integers(0, 10 * SECONDS_PER_DAY))
def test_volume_delivered_over_a_day_is_the_rate(rate: int, seconds: int) -> None:
    down = volume_delivered(FlowRate(rate), Duration(seconds), rounding=Rounding.DOWN)
    up = volume_delivered(FlowRate(rate), Duration(seconds), rounding=Rounding.UP)
    assert down.value * SECONDS_PER_DAY <= rate * seconds <= up.value * SECONDS_PER_DAY
    assert volume_delivered(FlowRate(rate), Duration.days(1), rounding=Rounding.DOWN) == Volume(rate)


@given(st.integers(1, 100_000), st.integers(1, 100_000))
def test_duration_to_deliver_is_enough_when_rounded_up(volume: int, rate: int) -> None:
    t = duration_to_deliver(Volume(volume), FlowRate(rate), rounding=Rounding.UP)
    assert volume_delivered(FlowRate(rate), t, rounding=Rounding.DOWN) >= Volume(volume)


@given(st.integers(0, 10**7), positive)
def test_rate_for_daily_dose_never_exceeds_target_when_rounded_down(target: int, conc: int) -> None:
    rate = rate_for_daily_dose(DoseRate(target), Concentration(conc), rounding=Rounding.DOWN)
    assert daily_dose(rate, Concentration(conc)) <= DoseRate(target)


def test_same_kind_arithmetic() -> None:
    assert Volume(5) + Volume(7) == Volume(12)
    assert Volume(5) - Volume(7) == Volume(-2)
    assert 3 * Dose(5) == Dose(15) == Dose(5) * 3
    assert Volume(1) < Volume(2)


def test_mixed_kinds_are_refused_at_run_time() -> None:
    mixed: Any = Dose(1)
    with pytest.raises(TypeError):
        Volume(1) + mixed
    with pytest.raises(TypeError):
        assert Volume(1) < mixed
    assert Volume(1) != mixed


@pytest.mark.parametrize("value", [1.5, "3", None, True])
def test_only_int_values(value: Any) -> None:
    with pytest.raises(TypeError):
        Volume(value)


def test_divide_refuses_non_positive_denominator() -> None:
    with pytest.raises(ValueError, match="positive"):
        divide(1, 0, Rounding.UP)


def test_mixing_kinds_is_a_static_type_error() -> None:
    # mypy runs with warn_unused_ignores: were these not type errors, `make typecheck` would fail.
    with pytest.raises(TypeError):
        Volume(1) + Dose(1)  # type: ignore[operator]
    with pytest.raises(TypeError):
        FlowRate(1) - Volume(1)  # type: ignore[operator]

"""The fluid path: what leaves the catheter tip, checked against the obvious integral with fractions."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from itbproto.core.therapy import SCALE, Flow, dose_between
from itbproto.core.therapy.fluid import Path, Segment, push

concs = st.sampled_from([0, 50, 500, 1000, 2000])


@st.composite
def paths(draw: st.DrawFn) -> Path:
    segments = draw(st.lists(st.tuples(st.integers(1, 400 * SCALE), concs), max_size=4))
    return Path(tuple(Segment(v, c) for v, c in segments))


@st.composite
def outlet(draw: st.DrawFn) -> list[Flow]:
    """Outlet flows in time order, each at one concentration (a refill changes it between them)."""
    flows, t = [], draw(st.integers(0, 10))
    for _ in range(draw(st.integers(0, 5))):
        t += draw(st.integers(0, 3_000))
        length = draw(st.integers(1, 20_000))
        flows.append(Flow(t, t + length, draw(st.integers(1, 30_000)), draw(concs)))
        t += length
    return flows


def content_at(path: Path, flows: list[Flow]) -> list[tuple[Fraction, Fraction, int]]:
    """The stream that leaves the tip, as (from, to, conc) in scaled volume: the path, then the outlet."""
    stream, pos = [], Fraction(0)
    for s in path.segments:
        stream.append((pos, pos + s.volume_scaled, s.conc_ug_ml))
        pos += s.volume_scaled
    for f in flows:
        stream.append((pos, pos + f.volume_scaled, f.conc_ug_ml))
        pos += f.volume_scaled
    return stream


def pushed_by(flows: list[Flow], t: int) -> int:
    return sum(f.rate_ul_day * max(0, min(f.end, t) - f.start) for f in flows)


def oracle_dose(path: Path, flows: list[Flow], start: int, end: int) -> Fraction:
    """Scaled dose leaving the tip in [start, end): the stream between the volumes pushed by then."""
    a, b = pushed_by(flows, start), pushed_by(flows, end)
    return sum(
        (
            max(Fraction(0), min(Fraction(b), hi) - max(Fraction(a), lo)) * conc
            for lo, hi, conc in content_at(path, flows)
        ),
        Fraction(0),
    )


@given(path=paths(), flows=outlet(), data=st.data())
def test_the_tip_delivers_the_path_then_the_outlet_exactly(
    path: Path, flows: list[Flow], data: st.DataObject
) -> None:
    after, tip = push(path, flows)
    assert after.volume_scaled == path.volume_scaled
    pushed = sum(f.volume_scaled * f.conc_ug_ml for f in flows)
    assert path.dose_scaled + pushed == after.dose_scaled + dose_between(tip, -(10**9), 10**9)
    end = max((f.end for f in flows), default=10) + 5
    start = data.draw(st.integers(0, end))
    stop = data.draw(st.integers(start, end))
    assert dose_between(tip, start, stop) == oracle_dose(path, flows, start, stop)


def test_a_concentration_change_leaves_the_old_drug_first() -> None:
    path = Path.filled(250, 2000)  # 250 µL of 2 mg/mL in the tubing and catheter
    after, tip = push(path, [Flow(0, 86_400, 800, 500)])  # the new rate for 400 µg/day at 500 µg/mL
    assert after == Path.filled(250, 500)
    # 250 µL leave at 800 µL/day: 7.5 h of 2000 µg/mL (4x the dose), then 500 µg/mL
    assert tip == (Flow(0, 27_000, 800, 2000), Flow(27_000, 86_400, 800, 500))
    assert dose_between(tip, 0, 86_400) == 250 * 2000 * SCALE + 550 * 500 * SCALE


def test_a_boundary_inside_a_second_splits_that_second_exactly() -> None:
    _, tip = push(Path((Segment(100, 2000),)), [Flow(0, 3, 60, 500)])  # 60 scaled per second
    assert tip == (Flow(0, 1, 60, 2000), Flow(1, 2, 40, 2000), Flow(1, 2, 20, 500), Flow(2, 3, 60, 500))


def test_an_empty_path_passes_the_outlet_through() -> None:
    flows = [Flow(0, 100, 800, 500), Flow(50, 60, 10_000, 500)]
    assert dose_between(push(Path(), flows)[1], 0, 100) == sum(f.dose_scaled for f in flows)


def test_saline_delivers_no_drug_until_the_path_is_full() -> None:
    _, tip = push(Path.filled(250, 0), [Flow(0, 86_400, 1_000, 500)])
    # 250 µL at 1 mL/day: 6 h of saline, then the drug (the same volume leaves the tip as enters)
    assert tip == (Flow(0, 21_600, 1_000, 0), Flow(21_600, 86_400, 1_000, 500))


def test_split_and_join() -> None:
    path = Path((Segment(10, 2000), Segment(30, 500)))
    head, tail = path.split(20)
    assert (head, tail) == (Path((Segment(10, 2000), Segment(10, 500))), Path((Segment(20, 500),)))
    assert head + tail == path
    assert path.ahead(20, 50) == 10 * 2000 + 10 * 500
    assert path.ahead(50, 50) == 10 * 2000 + 30 * 500 + 10 * 50
